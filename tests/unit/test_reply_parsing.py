"""What is kept of a generated reply: its first line, the citation split off."""

from tasks.generation import finish


def test_first_line_only():
    assert finish("Denver Broncos [2]\nThe Broncos won the game.", raw=True) == "Denver Broncos [2]"


def test_a_lead_in_keeps_the_line_after_it():
    assert (
        finish("The answer is:\nDenver Broncos [2]", raw=True)
        == "The answer is: Denver Broncos [2]"
    )


def test_blank_lines_are_skipped_and_an_empty_reply_stays_empty():
    assert finish("\n\n  1066 [1]\n", raw=True) == "1066 [1]"
    assert finish("", raw=True) == ""
    assert finish("   \n  ", raw=False) == ""


def test_cleaned_reply_drops_the_citation():
    assert "[" not in finish("Denver Broncos [2].", raw=False)

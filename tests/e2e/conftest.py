"""The e2e tests share one `dualengine run` on the session's servers (tiny profile): the
`first_run` fixture of tests/conftest.py, which the fault suite shares too."""

"""`dualengine ui`: a small web app where a person asks and rates, and an operator watches.

    dualengine ui --port 8765        # http://127.0.0.1:8765

Pages (server-rendered HTML): `/` pick groups and ask; `POST /ask` the answer with its cited
passages, each quote highlighted and linked to the passage (`/passages/{id}`, read with the
same groups), and a rating form; `POST /feedback` stores the rating (dualengine.rating);
`/operator` recent answers with their traces (links into the MLflow UI), ratings, and the
monitor status of both engines with sparklines of recent monitor runs.
JSON for programs: `POST /api/ask` {question, groups}, `POST /api/feedback` {trace_id,
rating: good|bad, correction?, user?}.

Groups: a caller may pick only among the groups the project's resolver allows them
(dualengine.access_groups.allowed_groups); an empty or foreign pick is refused (deny by default).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlencode

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from dualengine.settings import Settings
from dualengine.webpages import environment, render


class AskRequest(BaseModel):
    question: str
    groups: list[str]


class FeedbackRequest(BaseModel):
    trace_id: str
    rating: str
    correction: str | None = None
    user: str | None = None


class Refused(Exception):
    """A request the app will not serve: (HTTP status, message)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def allowed_groups(settings: Settings) -> list[str]:
    """The groups a UI caller may pick (params.yaml `retrieval.default_groups`)."""
    return sorted(settings.config().retrieval.default_groups)


def pick_groups(settings: Settings, picked: list[str]) -> list[str]:
    """The ticked groups through the project's resolver (dualengine.resolve), then only those
    this page offers: none, malformed or foreign ones are refused."""
    from dualengine.resolve import AccessGroupsError, validate_groups

    if not [g for g in picked if g and g.strip()]:
        raise Refused(400, "pick at least one group")
    try:
        chosen = validate_groups([g.strip() for g in picked if g and g.strip()])
    except AccessGroupsError as exc:
        raise Refused(400, str(exc)) from exc
    allowed = set(allowed_groups(settings))
    foreign = [g for g in chosen if g not in allowed]
    if foreign:
        raise Refused(403, f"groups not allowed here: {', '.join(foreign)}")
    return chosen


async def form_fields(request: Request) -> dict[str, list[str]]:
    """An URL-encoded form body (the pages' forms), without a multipart parser."""
    body = (await request.body()).decode("utf-8", errors="replace")
    return parse_qs(body, keep_blank_values=True)


def first(form: dict[str, list[str]], key: str) -> str:
    return (form.get(key) or [""])[0]


def create_app(settings: Settings, engine_factory: Callable[[], Any]) -> FastAPI:
    """The app around one answer engine (made on first use by engine_factory)."""
    from dualengine.rating import rate_answer
    from tasks.feedback import FeedbackError

    app = FastAPI(title="dualengine", docs_url=None, redoc_url=None)
    env = environment()
    state: dict[str, Any] = {}

    def engine():
        if "engine" not in state:
            state["engine"] = engine_factory()
        return state["engine"]

    @app.on_event("shutdown")
    def close() -> None:
        if "engine" in state:
            state["engine"].close()

    def ask(question: str, groups: list[str]) -> dict[str, Any]:
        question = (question or "").strip()
        rules = settings.config().validation
        if not rules.question_min_chars <= len(question) <= rules.question_max_chars:
            raise Refused(
                400,
                f"a question has {rules.question_min_chars} to "
                f"{rules.question_max_chars} characters",
            )
        chosen = pick_groups(settings, groups)  # refused before any work is done
        return engine().ask(question, chosen).as_dict()

    def rate(trace_id: str, rating: str, correction: str | None, user: str | None) -> dict:
        if rating not in ("good", "bad"):
            raise Refused(400, "rating must be 'good' or 'bad'")
        try:
            return rate_answer(
                settings,
                trace_id,
                rating == "good",
                rating == "bad",
                (correction or "").strip() or None,
                (user or "").strip() or "ui",
            )
        except FeedbackError as exc:
            raise Refused(400, str(exc)) from exc
        except LookupError as exc:
            raise Refused(404, str(exc)) from exc

    def page(name: str, status: int = 200, **values: Any) -> HTMLResponse:
        return HTMLResponse(render(env, name, **values), status_code=status)

    @app.get("/", response_class=HTMLResponse)
    def home(request: Request) -> HTMLResponse:
        picked = request.query_params.getlist("groups")
        return page("ask", allowed=allowed_groups(settings), picked=picked, question="")

    @app.post("/ask", response_class=HTMLResponse)
    async def ask_page(request: Request) -> HTMLResponse:
        form = await form_fields(request)
        question, groups = first(form, "question"), form.get("groups", [])
        try:
            answer = await run_in_threadpool(ask, question, groups)
        except Refused as exc:
            return page(
                "ask",
                exc.status,
                allowed=allowed_groups(settings),
                picked=groups,
                question=question,
                error=str(exc),
            )
        query = urlencode([("groups", g) for g in answer["groups"]])
        return page("answer", a=answer, group_query=query)

    @app.post("/feedback", response_class=HTMLResponse)
    async def feedback_page(request: Request) -> HTMLResponse:
        form = await form_fields(request)
        fields = [first(form, k) for k in ("trace_id", "rating", "correction", "user")]
        try:
            return page("rated", r=await run_in_threadpool(rate, *fields))
        except Refused as exc:
            return page(
                "ask",
                exc.status,
                allowed=allowed_groups(settings),
                picked=[],
                question="",
                error=str(exc),
            )

    @app.get("/passages/{passage_id:path}", response_class=HTMLResponse)
    def passage_page(passage_id: str, request: Request, quote: str = "") -> HTMLResponse:
        from dualengine.ui_data import fetch_passage

        try:
            groups = pick_groups(settings, request.query_params.getlist("groups"))
        except Refused as exc:
            return HTMLResponse(str(exc), status_code=exc.status)
        found = fetch_passage(engine().client, engine().config.alias, passage_id, groups)
        if found is None:  # missing and not readable by these groups look the same
            return HTMLResponse("passage not found", status_code=404)
        return page("passage", p=found, quote=quote)

    @app.get("/operator", response_class=HTMLResponse)
    def operator_page() -> HTMLResponse:
        from dualengine.ui_data import monitor_history, recent_answers, trace_link

        link = trace_link()
        return page(
            "operator",
            rows=recent_answers(settings, 50),
            monitor=monitor_history(20),
            trace_url=link,
        )

    @app.post("/api/ask")
    def api_ask(body: AskRequest) -> JSONResponse:
        try:
            return JSONResponse(ask(body.question, body.groups))
        except Refused as exc:
            return JSONResponse({"error": str(exc)}, status_code=exc.status)

    @app.post("/api/feedback")
    def api_feedback(body: FeedbackRequest) -> JSONResponse:
        try:
            return JSONResponse(rate(body.trace_id, body.rating, body.correction, body.user))
        except Refused as exc:
            return JSONResponse({"error": str(exc)}, status_code=exc.status)

    return app


def serve(settings: Settings, port: int, model: str = "champion") -> None:
    """Run the app on 127.0.0.1 with the model's engine (loaded before the first request)."""
    import uvicorn

    from dualengine.api import engine_for, load_generator_version
    from dualengine.endpoints import export_endpoints

    export_endpoints(settings)
    generator, version = load_generator_version(settings, model)
    engine = engine_for(settings, generator, version, caller="ui")
    app = create_app(settings, lambda: engine)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")

"""`metalyard flow|run|pool …` and `metalyard signal`: flows, their runs, pools and signals."""

import json
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.text import Text
from rich.tree import Tree

from metalyard.cli import parsing
from metalyard.cli.common import All, Cursor, Limit, PageLimit, limit_of, list_page, paging
from metalyard.cli.context import connect
from metalyard.cli.output import Output, OutputOption, cell, console, listing, note, show
from metalyard.errors import NotFound
from metalyard.orchestrator.schemas import (
    BeanSpecOut,
    FlowOut,
    RunBeanOut,
    RunOut,
    SignalResult,
)
from metalyard.orchestrator.states import TERMINAL, BeanState, RunState
from metalyard.sdk import Client

flow = typer.Typer(help="Flows: DAGs of idempotent beans, applied to one subject per run.")
run = typer.Typer(help="Runs: one flow applied to one subject, bean by bean.")
pool = typer.Typer(help="Capacity pools: keyed limits on beans running at once.")
for _app in (flow, run, pool):
    _app.info.no_args_is_help = True

STATE_STYLES = {
    BeanState.BLOCKED: "dim",
    BeanState.READY: "cyan",
    BeanState.RUNNING: "bold yellow",
    BeanState.WAITING: "magenta",
    BeanState.DONE: "green",
    BeanState.SKIPPED: "blue",
    BeanState.FAILED: "bold red",
    BeanState.CANCELLED: "red",
    RunState.RUNNING: "bold yellow",
    RunState.SUCCEEDED: "bold green",
    RunState.FAILED: "bold red",
    RunState.CANCELLED: "bold red",
}
NOTABLE = (BeanState.RUNNING, BeanState.WAITING, BeanState.FAILED)
"""Bean states worth naming in a run's one-line summary."""


def bean_names(item: FlowOut) -> str:
    return ", ".join(bean.name for bean in item.beans)


def progress(item: RunOut) -> str:
    """`3/4 ended; report WAITING`: how far a run got, in one cell."""
    ended = sum(1 for bean in item.beans if bean.state in TERMINAL)
    notable = [f"{bean.name} {bean.state.value}" for bean in item.beans if bean.state in NOTABLE]
    return "; ".join([f"{ended}/{len(item.beans)} ended", *notable])


FLOW_COLUMNS = ["name", "family", (bean_names, "BEANS"), ("required_params", "PARAMS")]
RUN_COLUMNS = [
    "id",
    "flow",
    "subject",
    "state",
    (progress, "BEANS"),
    "created_by",
    "created_at",
    "finished_at",
]
POOL_COLUMNS = ["key", "size", "in_use"]

RunId = Annotated[int, typer.Argument(help="The run's id.", metavar="ID")]


# Flows ---------------------------------------------------------------------------------


@flow.command("list")
def flow_list(output: OutputOption = Output.table):
    """List the flows the server knows."""
    listing(connect().flows.list(), output, FLOW_COLUMNS)


@flow.command("show")
def flow_show(name: str, output: OutputOption = Output.table):
    """Draw a flow's DAG: each bean after what it waits on, its pools, retries and timeout."""
    found = connect().flows.get(name)
    if output is not Output.table:
        show(found, output)
        return
    if found.description:
        typer.echo(found.description)
    typer.echo(found.text)


# Runs ----------------------------------------------------------------------------------


@run.command("start")
def run_start(
    flow_name: Annotated[str, typer.Argument(metavar="FLOW", help="The flow's name.")],
    subject: Annotated[str, typer.Argument(help="What it applies to, as kind:id (asset:SN1).")],
    param: Annotated[
        list[str] | None,
        typer.Option(
            "--param",
            "-p",
            metavar="KEY=VALUE",
            help="A run parameter, repeatable; VALUE is read as JSON if it parses, else as text.",
        ),
    ] = None,
    output: OutputOption = Output.table,
):
    """Start a flow on a subject; refused, naming it, while a run of its family is active there."""
    client = connect()
    started = client.runs.start(flow_name, subject, parsing.json_pairs(param or []))
    note(f"started run {started.id}; follow it with: metalyard run show {started.id}")
    drawn(client, started, output)


@run.command("list")
def run_list(
    state: Annotated[
        RunState | None, typer.Option(case_sensitive=False, help="Only runs in this state.")
    ] = None,
    flow_name: Annotated[str | None, typer.Option("--flow", help="Only runs of this flow.")] = None,
    subject: Annotated[str | None, typer.Option(help="Only runs on this subject.")] = None,
    limit: PageLimit = None,
    cursor: Cursor = None,
    everything: All = False,
    output: OutputOption = Output.table,
):
    """List runs, newest first; says when more exist than it shows."""
    limit = limit_of(limit, everything)
    runs = connect().runs.list(
        state=state, flow=flow_name, subject=subject, **paging(limit, cursor)
    )
    list_page(runs, output, RUN_COLUMNS, every="--all")


@run.command("show")
def run_show(run_id: RunId, output: OutputOption = Output.table):
    """Draw a run: each bean under what it waits on, with its state, attempts, time and error.

    With -o json or yaml: the run with every execution of every bean.
    """
    client = connect()
    drawn(client, client.runs.get(run_id), output)


@run.command("cancel")
def run_cancel(run_id: RunId, output: OutputOption = Output.table):
    """Stop a run: its beans not yet ended are cancelled (resume it with `run rewalk`)."""
    client = connect()
    cancelled = client.runs.cancel(run_id)
    note(f"cancelled run {run_id}")
    drawn(client, cancelled, output)


@run.command("rewalk")
def run_rewalk(run_id: RunId, output: OutputOption = Output.table):
    """Resume a failed or cancelled run: beans done stay done, the others run again."""
    client = connect()
    resumed = client.runs.rewalk(run_id)
    note(f"run {run_id} runs again")
    drawn(client, resumed, output)


def drawn(client: Client, item: RunOut, output: Output) -> None:
    """A run as a tree for people, or its API shape for tools."""
    if output is not Output.table:
        show(item, output)
        return
    try:
        specs = {spec.name: spec for spec in client.flows.get(item.flow).beans}
    except NotFound:
        note(f"warning: the server does not know flow {item.flow!r}; beans are shown unlinked")
        specs = {}
    console().print(run_tree(item, specs))


def run_tree(item: RunOut, specs: dict[str, BeanSpecOut]) -> Tree:
    """Each bean under the first bean it depends on; its other dependencies are named."""
    names = {bean.name for bean in item.beans}
    deps = {
        bean.name: [
            (dep, condition)
            for dep, condition in (
                specs[bean.name].depends_on if bean.name in specs else {}
            ).items()
            if dep in names
        ]
        for bean in item.beans
    }
    children: dict[str | None, list[RunBeanOut]] = {}
    for bean in item.beans:
        children.setdefault(deps[bean.name][0][0] if deps[bean.name] else None, []).append(bean)

    def grow(node: Tree, parent: str | None) -> None:
        for bean in children.get(parent, []):
            grow(node.add(bean_label(bean, deps[bean.name], specs.get(bean.name))), bean.name)

    root = Tree(run_label(item))
    grow(root, None)  # flows are acyclic, so this ends
    return root


def run_label(item: RunOut) -> Text:
    label = Text.assemble(
        (f"run {item.id}", "bold"),
        f"  {item.flow} on {item.subject}  ",
        (item.state.value, STATE_STYLES[item.state]),
    )
    facts = [f"started {cell(item.created_at)} by {item.created_by or '?'}"]
    if item.finished_at:
        facts.append(f"finished {cell(item.finished_at)}")
    if item.params:
        facts.append("params " + ", ".join(f"{k}={text(v)}" for k, v in item.params.items()))
    label.append("\n" + "; ".join(facts), style="dim")
    return label


def bean_label(bean: RunBeanOut, deps: list[tuple[str, str]], spec: BeanSpecOut | None) -> Text:
    """`report  WAITING  1 attempt  0.5s  waiting for report:SN1  (also after inventory)`."""
    label = Text.assemble((bean.name, "bold"), "  ", (bean.state.value, STATE_STYLES[bean.state]))
    facts = []
    if deps and deps[0][1] != "succeeded":
        facts.append(f"when {deps[0][0]} {deps[0][1]}")
    if bean.attempts:
        tries = f"{bean.attempts} attempt{'s' if bean.attempts != 1 else ''}"
        facts.append(f"{tries} ({bean.failures} failed)" if bean.failures else tries)
    if bean.duration is not None:
        facts.append(seconds(bean.duration))
    elif bean.state is BeanState.RUNNING and bean.started_at:
        facts.append(
            f"running for {seconds((datetime.now(UTC) - bean.started_at).total_seconds())}"
        )
    for fact in facts:
        label.append(f"  {fact}")
    if reason := last_error(bean):
        failed = bean.state is BeanState.FAILED or bean.failures
        label.append(f"  {reason}", style="red" if failed else "dim")
    if bean.state is BeanState.FAILED and spec is not None and spec.ignore_failure:
        label.append("  (failure ignored)", style="dim")
    if deps[1:]:
        also = ", ".join(dep if cond == "succeeded" else f"{dep} {cond}" for dep, cond in deps[1:])
        label.append(f"  (also after {also})", style="dim")
    return label


def last_error(bean: RunBeanOut) -> str:
    """Why the bean is as it is: its reason, else the error of its last execution."""
    if bean.reason:
        return bean.reason
    errors = [attempt.error for attempt in bean.history if attempt.error]
    return f"last error: {errors[-1]}" if errors and bean.state is not BeanState.DONE else ""


def text(value: Any) -> str:
    """A parameter as it would be given to `run start --param`."""
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


def seconds(value: float) -> str:
    if value < 10:
        return f"{value:.2f}s"
    if value < 120:
        return f"{value:.0f}s"
    minutes, rest = divmod(int(value), 60)
    return f"{minutes}m{rest:02d}s" if minutes < 60 else f"{minutes // 60}h{minutes % 60:02d}m"


# Pools ---------------------------------------------------------------------------------


@pool.command("list")
def pool_list(
    prefix: Annotated[
        str | None, typer.Option(help="Only keys starting with this, e.g. mgmt-switch:.")
    ] = None,
    limit: Limit = None,
    cursor: Cursor = None,
    output: OutputOption = Output.table,
):
    """List pools: each key's size and the slots in use now."""
    pools = connect().pools.list(prefix=prefix, **paging(limit, cursor))
    list_page(pools, output, POOL_COLUMNS)


@pool.command("set")
def pool_set(
    key: Annotated[str, typer.Argument(help="The pool's key, e.g. mgmt-switch:r01.")],
    size: Annotated[int, typer.Argument(min=1, help="Beans that may hold a slot at once.")],
    output: OutputOption = Output.table,
):
    """Resize a pool, or create it (admin); slots already held stay held."""
    show(connect().pools.set(key, size), output)


# Signals -------------------------------------------------------------------------------


def signal(
    key: Annotated[str, typer.Argument(help="What beans wait on, e.g. report:SN0001.")],
    payload: Annotated[
        str | None,
        typer.Option(metavar="JSON", help='A JSON object the woken beans read, e.g. {"ok": true}.'),
    ] = None,
    output: OutputOption = Output.table,
):
    """Wake the beans waiting on KEY; prints how many it woke."""
    woken = connect().signals.send(key, parsing.json_object(payload))
    if output is Output.table:
        typer.echo(f"woke {woken} waiting bean{'s' if woken != 1 else ''}")
    else:
        show(SignalResult(woken=woken), output)

"""Tables and a widget for the concurrency model (:mod:`refimpl.host.concurrency`).

:func:`trace_markdown` draws an interleaving as a table of threads (columns)
by steps (rows), which is how the book shows each rule and each race;
:func:`exploration_markdown` tabulates explorations. :class:`ConcurrencyExplorer`
is the widget: choose a scenario and a bug switch, step through the
shortest interleaving that breaks an invariant (or, with no switch, the same
schedule run by the correct code), and see the state after each step.
ipywidgets is imported when the widget is built, so this module imports
without it.
"""

from __future__ import annotations

import html

from refimpl.errors import check_choice, check_instance
from refimpl.host.concurrency import model as M
from refimpl.host.concurrency.checker import Exploration, Trace, replay, shortest_violation
from refimpl.host.concurrency.scenarios import CATCHES, SCENARIOS, scenario

__all__ = ["trace_markdown", "exploration_markdown", "state_text", "ConcurrencyExplorer", "NO_BUG"]

#: The bug dropdown's "everything correct" choice.
NO_BUG = "(none)"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def trace_markdown(trace: Trace) -> str:
    """A Markdown table: one column per thread, one row per step, then what broke.

    Raises
    ------
    TypeError
        ``trace`` is not a trace from :mod:`refimpl.host.concurrency.checker`.
    """
    check_instance("trace", trace, Trace)
    names = [t.name for t in trace.config.threads]
    rows = ["| step | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for n, s in enumerate(trace.steps, 1):
        cells = [""] * len(names)
        cells[s.thread] = _cell(s.label)
        rows.append(f"| {n} | " + " | ".join(cells) + " |")
    if trace.broken:
        what = "; ".join(f"**{k}**: {v}" for k, v in trace.broken.items())
        rows.append(f"| | {_cell(what)} |" + " |" * (len(names) - 1))
    return "\n".join(rows)


def exploration_markdown(rows) -> str:
    """A Markdown table of ``(scenario, switch, Exploration)`` rows.

    Raises
    ------
    TypeError
        A row is not ``(str, str, Exploration)``.
    """
    check_instance("rows", rows, (list, tuple))
    out = ["| scenario | switch | states | steps | interleavings | ms | broken |",
           "|---|---|---|---|---|---|---|"]
    for row in rows:
        check_instance("row", row, tuple)
        if len(row) != 3:
            raise TypeError(f"row must be (scenario, switch, Exploration), got {len(row)} items")
        name, bug, e = row
        check_instance("scenario", name, str)
        check_instance("switch", bug, str)
        check_instance("exploration", e, Exploration)
        broken = ", ".join(e.violation.broken) if e.violation else "nothing"
        inter = "" if e.interleavings is None else f"{e.interleavings:,}"
        out.append(f"| `{name}` | {bug or NO_BUG} | {e.states:,} | {e.transitions:,} | {inter} | "
                   f"{e.seconds * 1000:.0f} | {broken} |")
    return "\n".join(out)


def state_text(vm: M.Vm) -> str:
    """The shared state in a few lines: root, table entries, locks, TLB, log.

    Raises
    ------
    TypeError
        ``vm`` is not a :class:`refimpl.host.concurrency.model.Vm`.
    """
    check_instance("vm", vm, M.Vm)
    lines = [f"root: {M._spte_text(vm.root, M.ROOT_LEVEL)}"]
    for tid, (e0, e1) in enumerate(vm.tables):
        if vm.tstate[tid] != "cache":
            lines.append(f"table {tid} ({vm.tstate[tid]}): [{M._spte_text(e0)}, {M._spte_text(e1)}]")
    lock = f"write by {vm.writer}" if vm.writer != -1 else f"{vm.readers} reader(s)"
    lines.append(f"mmu_lock: {lock}; seq {vm.seq}, in_progress {vm.in_progress}")
    tlb = ", ".join(f"gfn {b} L{lv} {p:#x}{' W' if w else ''}" for b, lv, p, w in sorted(vm.tlb))
    lines.append(f"TLB: {tlb or 'empty'}" + (" (flush pending)" if vm.owed else ""))
    lines.append(f"host: {', '.join(f'{p:#x}' for p in vm.host)}; dead: "
                 f"{', '.join(f'{p:#x}' for p in sorted(vm.dead)) or 'none'}")
    if vm.logging:
        lines.append(f"dirty log: {sorted(vm.dirty)}")
    lines.append(f"counters: {vm.pages_4k} 4K, {vm.pages_2m} huge, {vm.nr_tables} tables")
    return "\n".join(lines)


def _trace_html(trace: Trace, upto: int) -> str:
    names = [t.name for t in trace.config.threads]
    head = "".join(f"<th>{html.escape(n)}</th>" for n in names)
    rows = []
    for n, s in enumerate(trace.steps, 1):
        cells = ["<td></td>"] * len(names)
        cells[s.thread] = f"<td>{html.escape(s.label)}</td>"
        style = "background:#fff3c4;" if n == upto else ("color:#bbb;" if n > upto else "")
        rows.append(f"<tr style='{style}'><td>{n}</td>{''.join(cells)}</tr>")
    vm = trace.steps[upto - 1].vm if upto else trace.config.vm
    state = html.escape(state_text(vm))
    if trace.broken and upto == len(trace.steps):
        verdict = "<b style='color:#b00'>broken:</b> " + html.escape(
            "; ".join(f"{k}: {v}" for k, v in trace.broken.items()))
    elif upto == len(trace.steps):
        verdict = "<b style='color:#070'>every invariant holds</b>"
    else:
        verdict = f"after step {upto} of {len(trace.steps)}"
    return (f"<table><tr><th>step</th>{head}</tr>{''.join(rows)}</table>"
            f"<p>{verdict}</p><pre>{state}</pre>")


def _trace_for(name: str, bug: str) -> Trace:
    """The shortest violation with ``bug`` on; with no bug, that schedule run correctly."""
    if bug != NO_BUG:
        t = shortest_violation(scenario(name, {bug}))
        if t is not None:
            return t
    shown = [b for b, (s, _) in CATCHES.items() if s == name]
    sched = []
    if shown:
        t = shortest_violation(scenario(name, {shown[0]}))
        sched = [s.thread for s in t.steps]
    n = len(scenario(name).threads)
    # The schedule, then round-robin until every thread is done.
    sched += [i % n for i in range(64)]
    return replay(scenario(name, set() if bug == NO_BUG else {bug}), sched)


class ConcurrencyExplorer:
    """Choose threads and a switch, step through an interleaving, see what breaks.

    Attributes
    ----------
    scenario : Dropdown
        One of :data:`refimpl.host.concurrency.scenarios.SCENARIOS`.
    bug : Dropdown
        :data:`NO_BUG` or a switch of :data:`refimpl.host.concurrency.threads.BUGS`.
    step : IntSlider
        How many steps of the interleaving to show.
    output : HTML
    report : Trace
        The interleaving shown.
    """

    def __init__(self, name: str = "fast_vs_notifier", bug: str = "fast_pf_plain_store") -> None:
        import ipywidgets as W

        from refimpl.host.concurrency.threads import BUGS

        check_choice("name", name, SCENARIOS)
        check_choice("bug", bug, (NO_BUG, *BUGS))
        self.scenario = W.Dropdown(options=list(SCENARIOS), value=name, description="threads")
        self.bug = W.Dropdown(options=[NO_BUG, *BUGS], value=bug, description="switch")
        self.step = W.IntSlider(min=0, max=1, value=0, description="step")
        self.output = W.HTML()
        for c in (self.scenario, self.bug):
            c.observe(self._rebuild, names="value")
        self.step.observe(self._redraw, names="value")
        self.ui = W.VBox([W.HBox([self.scenario, self.bug]), self.step, self.output])
        self.report: Trace = None  # type: ignore[assignment]
        self.update()

    def update(self) -> None:
        """Recompute the interleaving for the chosen scenario and switch; show all of it."""
        self.report = _trace_for(self.scenario.value, self.bug.value)
        n = len(self.report.steps)
        self.step.max = max(n, 1)
        if self.step.value == n:
            self._redraw()
        self.step.value = n

    def _rebuild(self, _change=None) -> None:
        self.update()

    def _redraw(self, _change=None) -> None:
        upto = min(self.step.value, len(self.report.steps))
        self.output.value = _trace_html(self.report, upto)

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.ui)

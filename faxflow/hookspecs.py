"""Every hook faxflow calls, in the order a fax meets them.

How results combine is chosen per hook, on purpose:
- one answer: ``firstresult`` hooks stop at the first non-None return (the core's own
  default is registered ``trylast`` so any plugin can take over);
- contributions: every non-None return is collected and merged by the core;
- votes: every opinion is collected and decided by `faxflow.ack.decide`;
- notifications: return values are ignored; an exception is logged, never fatal.

Every implementation may accept any subset of the arguments listed, so adding an argument
never breaks an old plugin. Stage hooks (text extraction, classification, routing, delivery)
may raise: `faxflow.errors.PermanentError` quarantines the fax with its message, any other
exception becomes a transient problem (the fax is retried after its lock expires).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    import click

    from faxflow.app import App
    from faxflow.config import Config, ConfigProblem
    from faxflow.types import (
        Classification,
        Decision,
        DeliveryResult,
        DestinationType,
        Document,
        Fax,
        Notice,
        PageText,
        Part,
        Route,
        Target,
        Vote,
    )

hookspec = pluggy.HookspecMarker("faxflow")
hookimpl = pluggy.HookimplMarker("faxflow")


# --- Set-up and tear-down -------------------------------------------------------------------


@hookspec
def faxflow_register_commands(cli: click.Group) -> None:
    """Add click commands to the ``faxflow`` command line.

    Fires once when the CLI is built, before arguments are parsed. Add commands with
    ``cli.command()`` or ``cli.add_command()``. Return value ignored. May raise: the CLI then
    fails to start, so keep it to adding commands.
    """


@hookspec
def faxflow_config_sections() -> Iterable[str] | None:
    """Name the top-level TOML tables this plugin reads besides ``[plugins.<name>]``.

    Fires when a config file is validated. The core rejects top-level keys nobody claims, so a
    plugin that reads e.g. ``[[rule]]`` returns ``["rule"]``. Contributions are merged.
    """


@hookspec
def faxflow_check_config(config: Config, app: App) -> Iterable[ConfigProblem] | None:
    """Validate this plugin's part of the configuration; return the problems found.

    Fires for ``faxflow check``, at start-up and for every hot reload, before
    `faxflow_configure`. `config` is the parsed file; ``config.plugin_options(name)`` is the
    ``[plugins.<name>]`` table. Problems name their key path; the core adds file and line.
    Contributions are merged; any problem rejects the file. Must not raise (an exception is
    reported as a problem of the plugin).
    """


@hookspec
def faxflow_configure(config: Config, app: App) -> None:
    """Take a validated configuration into use.

    Fires at start-up and after every hot reload that passed `faxflow_check_config`. Build
    what is costly here (compiled rules, connection settings), not per fax. Return value
    ignored. May raise: at start-up the worker refuses to start; on reload the new file is
    rejected and the old one stays, and every plugin's `faxflow_configure` is called again
    with the old one, so a plugin that took the new one goes back to it.
    """


@hookspec
def faxflow_destination_types() -> Iterable[DestinationType] | None:
    """Declare the destination types this plugin delivers to (``folder``, ``email``, ...).

    Fires once when the app is built. Contributions are merged into ``app.destinations``; two
    plugins declaring the same type name is an error at start-up. Each type validates its own
    route options, so ``faxflow check`` can report a bad option with its rule.
    """


@hookspec
def faxflow_startup(app: App) -> None:
    """The worker is about to start pulling: open pools and connections.

    Fires once, after `faxflow_configure`. Return value ignored. May raise: the worker then
    refuses to start with the plugin's message.
    """


@hookspec
def faxflow_shutdown(app: App) -> None:
    """The worker has stopped pulling and every in-flight fax is done: release resources.

    Fires once, also after a failed start-up. Return value ignored; exceptions are logged.
    """


# --- The per-fax protocol -------------------------------------------------------------------


@hookspec(firstresult=True)
def faxflow_process_fax(fax: Fax, app: App) -> Decision | None:
    """Run the whole protocol for one fax and return the acknowledgement decision.

    Fires once per handed-out job, after its documents are downloaded. The core's default
    (``trylast``) calls, in order: `faxflow_extract_text`, `faxflow_classify`,
    `faxflow_route`, `faxflow_hold_vote` (which may stop the fax before delivery),
    `faxflow_deliver` for each route not yet delivered, then `faxflow_ack_vote`, and decides.
    Wrap it (``wrapper=True``) to time or observe a fax;
    return a `Decision` to replace it. Stops at the first non-None result. Exceptions from the
    wrapper chain become a not-yet decision.
    """


@hookspec(firstresult=True)
def faxflow_extract_text(fax: Fax, document: Document, app: App) -> list[PageText] | None:
    """Return the text of every page of one document.

    Fires once per downloaded document, unless the text is already known. Return one
    `PageText` per page of the document: a page that failed has ``error`` set and empty text
    (the core then quarantines the fax, or labels it ``unreadable-pages`` with
    ``[worker] unreadable_pages = "label"``); a page not read on purpose has ``skipped=True``.
    Return None if this plugin cannot read the document type, so the next one is asked. Stops
    at the first non-None result. Raise `PermanentError` when the document cannot be read at
    all (corrupt, not a fax document): the fax is quarantined with that reason, which the
    core prefixes with the document ("document 2 of 3 (29.pdf): "), so say only what is
    wrong.
    """


@hookspec(firstresult=True)
def faxflow_split(fax: Fax, app: App) -> list[Part] | None:
    """Cut a fax into parts that are classified, routed and delivered each on its own (e.g.
    at separator sheets); None leaves it one fax.

    Fires once per attempt after text extraction (``fax.pages`` and their ``barcodes`` are
    set), before classification. Return `Part` objects naming the pages of each part as
    1-based positions in ``fax.pages``; pages in no part (the separator sheets) are dropped.
    Each part becomes a fax of its own with the id ``"<fax id>#<n>"`` and ``fax.parent``
    set; the fax is acknowledged once every part is delivered or quarantined on its own. The
    answer must be the same on every attempt (a part's number is its identity in the
    journal). Stops at the first non-None result. An exception is a problem of the fax
    (`PermanentError` quarantines it whole).
    """


@hookspec
def faxflow_classify(fax: Fax, app: App) -> Classification | None:
    """Contribute labels and extracted fields for a fax.

    Fires once per fax after text extraction (``fax.pages`` is filled). Contributions are
    merged: labels as a union, fields in call order (a later plugin's field wins; the core
    logs the conflict), ``explain`` lines by heading into ``fax.explanations`` (shown by
    ``faxflow explain``). Return None to abstain. Labels are visible to `faxflow_route`.
    """


@hookspec
def faxflow_route(fax: Fax, app: App) -> Iterable[Route] | None:
    """Return the destinations this fax goes to.

    Fires once per fax after classification. Contributions are concatenated in call order;
    routes whose ``key`` was already contributed are dropped with a warning. A fax nobody
    routes is quarantined ("no route"). Route options must already be rendered for this fax.
    """


@hookspec
def faxflow_hold_vote(fax: Fax, app: App) -> Vote | None:
    """Vote on delivering this fax at all, before any of its routes is delivered.

    Fires once per attempt after routing (``fax.routes`` is set) and before the first
    `faxflow_deliver`. Decided like `faxflow_ack_vote`: any quarantine quarantines the fax
    with nothing delivered in this attempt, any not-yet leaves it locked to come back after
    its lock timeout, else delivery goes on. None abstains; an exception counts as not-yet.
    Use it for every reason to stop a fax (a virus scan, a missing approval); a quarantine
    vote in `faxflow_ack_vote` comes after the routes were delivered.
    """


@hookspec
def faxflow_route_targets(app: App) -> Iterable[Target | str] | None:
    """Name the targets an operator may send a fax to by hand (`faxflow_route_to`), e.g.
    the rules plugin's rules, as `Target` objects (with the labels each gives) or plain
    names. Contributions are merged; used by the console and ``faxflow quarantine route``.
    """


@hookspec(firstresult=True)
def faxflow_route_to(fax: Fax, target: str, app: App) -> Iterable[Route] | None:
    """The routes of one target an operator picked (a name from `faxflow_route_targets`),
    rendered for this fax whatever the fax's content would have chosen. Return None if the
    target is not yours. Stops at the first non-None result. Raise `PermanentError` when the
    target cannot be used for this fax (a template fails)."""


@hookspec(firstresult=True)
def faxflow_deliver(fax: Fax, route: Route, uncertain: bool, app: App) -> DeliveryResult | None:
    """Deliver a fax to one route of a destination type this plugin declared.

    Fires once per route that the journal does not record as delivered. Return None if
    ``route.type`` is not yours. ``uncertain`` is True when an earlier attempt started this
    very delivery and did not record it as delivered (a crash mid-call, or a transient failure
    whose answer may have been lost after the target acted): look at the target first and do
    not create a second copy. Return `DeliveryResult.transient` for what may work later,
    `.permanent` for what never will. Stops at the first non-None result. An exception counts
    as transient.
    """


@hookspec(firstresult=True)
def faxflow_notify(notice: Notice, route: Route, app: App) -> DeliveryResult | None:
    """Tell people something (an alert digest) through one route of a destination type this
    plugin declared. Return None if ``route.type`` is not yours; a `DeliveryResult` as for
    `faxflow_deliver`. Stops at the first non-None result. An exception counts as transient
    (the notice is tried again with the next digest)."""


@hookspec
def faxflow_ack_vote(fax: Fax, app: App) -> Vote | None:
    """Vote on acknowledging this fax at Retarus.

    Fires once per fax after delivery (to stop a fax before delivery, use
    `faxflow_hold_vote`; a fax quarantined here keeps the routes already delivered, and its
    quarantine record lists them). Every vote is collected with its plugin's name and
    decided by `faxflow.ack.decide`: any quarantine wins, else any not-yet leaves the fax
    locked to come back after its lock timeout, else it is acknowledged. None abstains. An
    exception counts as not-yet.
    """


# --- Notifications (return ignored, exceptions logged) ---------------------------------------


@hookspec
def faxflow_fax_received(fax: Fax, app: App) -> None:
    """A job was handed out and its documents downloaded; processing starts."""


@hookspec
def faxflow_fax_read(fax: Fax, app: App) -> None:
    """The text of every document was extracted (``fax.pages`` is set; pages that could not
    be read carry ``error``). Fires once per attempt, also when extraction failed."""


@hookspec
def faxflow_fax_routed(fax: Fax, app: App) -> None:
    """The fax was classified and routed: ``fax.labels``, ``fax.fields`` and ``fax.routes``
    are set; nothing is delivered yet. Fires once per attempt that got this far."""


@hookspec
def faxflow_fax_delivered(fax: Fax, route: Route, result: DeliveryResult, app: App) -> None:
    """One route of a fax was delivered (fires once per route, never again for that route)."""


@hookspec
def faxflow_fax_acknowledged(fax: Fax, decision: Decision, app: App) -> None:
    """The fax was acknowledged at Retarus after every route succeeded; it will not come back."""


@hookspec
def faxflow_fax_quarantined(fax: Fax, decision: Decision, app: App) -> None:
    """The fax was kept in the quarantine (the journal's, ``fax.scratch["quarantine_id"]``;
    exported to ``fax.scratch["quarantine_dir"]`` when configured) and will be
    acknowledged. ``decision.reasons`` says why."""


@hookspec
def faxflow_fax_failed(fax: Fax, decision: Decision, app: App) -> None:
    """This attempt did not finish (a not-yet vote); the fax stays locked and comes back after
    the lock timeout, until ``max_attempts`` quarantines it."""

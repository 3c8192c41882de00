"""A one-file plugin for the end-to-end tests (loaded with --plugins-dir).

Routes every fax to the "testdir" destination, which writes its document to $E2E_OUT with
O_EXCL: a second write of the same fax is recorded in duplicates.log, so a test can prove
exactly-once from the outside. Faxes whose id is listed in $E2E_NOT_YET get a not-yet vote.
$E2E_DELIVER_DELAY (seconds) makes every delivery slow, for tests that kill a worker mid-fax.
"""

import os
import time
from pathlib import Path

from faxflow.hookspecs import hookimpl
from faxflow.paths import safe_name
from faxflow.types import DeliveryResult, DestinationType, Route, Vote

OUT = Path(os.environ["E2E_OUT"])
NOT_YET = set(filter(None, os.environ.get("E2E_NOT_YET", "").split(",")))
DELAY = float(os.environ.get("E2E_DELIVER_DELAY", "0"))


@hookimpl
def faxflow_destination_types():
    return [DestinationType("testdir", description="test folder with duplicate detection")]


@hookimpl(trylast=True)  # after other routers: its route is the last of a fax
def faxflow_route(fax):
    return [Route(key="all/0", type="testdir", rule="all")]


@hookimpl
def faxflow_deliver(fax, route, uncertain):
    if route.type != "testdir":
        return None
    time.sleep(DELAY)
    target = OUT / (safe_name(fax.id) + ".pdf")
    tmp = OUT / f".tmp-{os.getpid()}-{safe_name(fax.id)}"
    tmp.write_bytes(fax.documents[0].path.read_bytes())
    try:
        os.link(tmp, target)  # atomic, and fails if the fax was delivered before
    except FileExistsError:
        if not uncertain:
            with open(OUT / "duplicates.log", "a") as log:
                log.write(f"{fax.id!r}\n")
        return DeliveryResult.delivered("already there", str(target))
    finally:
        tmp.unlink()
    return DeliveryResult.delivered("written", str(target))


@hookimpl
def faxflow_ack_vote(fax):
    if fax.id in NOT_YET:
        return Vote.not_yet("test plugin says not yet")
    return None

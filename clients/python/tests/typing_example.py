"""Not a test: ci.sh type-checks it with mypy --strict against the installed wheel, so the
package's types (the generated stubs' .pyi and the helpers' hints) are known to work in a
user's code. Never called."""

from __future__ import annotations

from pathlib import Path
from typing import List

import conclave_client
from conclave_client import ConclaveError, follow_events, follow_logs, paginate
from conclave_client.v1 import artifacts_pb2, runs_pb2


def example(path: Path) -> List[str]:
    client: conclave_client.Client = conclave_client.connect("127.0.0.1:50051", token="t")
    run: runs_pb2.Run = client.runs.CreateRun(runs_pb2.CreateRunRequest(kind="echo"))
    state: runs_pb2.RunState = run.state
    sequences: List[int] = [event.sequence for event in follow_events(client, run.id)]
    texts: List[str] = [line.text for line in follow_logs(client, run.id, follow=False)]
    ids: List[str] = [r.id for r in paginate(client.runs.ListRuns, runs_pb2.ListRunsRequest(), lambda r: r.runs)]
    artifact: artifacts_pb2.Artifact = conclave_client.upload_file(client, run.id, "a.txt", path)
    conclave_client.download_file(client, artifact, path.with_suffix(".copy"))
    try:
        client.runs.GetRun(runs_pb2.GetRunRequest(id=run.id))
    except Exception as err:
        try:
            conclave_client.raise_for(err)
        except ConclaveError as error:
            reason: str = error.reason
            fields: List[str] = [v.field for v in error.field_violations]
            return [reason, *fields]
    return [str(state), *map(str, sequences), *texts, *ids]

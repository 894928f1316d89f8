"""The link process: the Ray driver of a `--ray` worker front end.

A process of its own because a Ray driver does not outlive its cluster: when Ray goes away, this process ends (or is
ended by Ray), the front end answers its clients that the model is unavailable and starts a new link, which
connects again once Ray is back. It connects to Ray (or starts an embedded one), deploys the application unless a
deployment is already running there (several front ends share one), and then forwards the front end's requests to
the replicas, many at once, so that Serve can batch them. Avatars go into Ray's object store once; requests carry
their reference. Started by the front end as `python -m avatarify.remote.serve.bridge ENDPOINT NAME SETTINGS`.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys
from collections import OrderedDict
from contextlib import suppress
from typing import Any

import numpy as np
import zmq
import zmq.asyncio

import ray
from ray import serve
from ray.exceptions import RayActorError
from ray.serve.exceptions import DeploymentUnavailableError, ReplicaUnavailableError

from ...core.frame import FRAME_SIZE, MotionOptions
from ...core.ratelimit import RateLimitedLog
from ...model.loader import ModelOptions
from .deployment import APP_NAME, DEPLOYMENT_NAME, FrameRequest, build_app
from .link import LinkError, pack, unpack

log = logging.getLogger("avatarify.remote.serve.bridge")

STATE_INTERVAL = 1.0
# Status polls of the cluster that may fail in a row before this link gives up (the front end starts another).
FAILED_POLLS = 4
POLL_TIMEOUT = 5.0
# A request the replicas have not answered in this time is given up (a replica dies: it is retried elsewhere first).
REQUEST_TIMEOUT = 20.0
PROBE_TIMEOUT = 2.0
# Connecting to Ray and deploying (replicas load the model) may take this long before the link gives up.
DEPLOY_TIMEOUT = 300.0
# Avatars kept in the object store for the replicas; the front end keeps fewer, so it never names one dropped here.
AVATAR_REFS = 256
# Failures that mean a replica went away, not that the model failed: the frame is lost, the session goes on.
_LOST = (RayActorError, ReplicaUnavailableError, DeploymentUnavailableError, asyncio.TimeoutError)


class Bridge:
    """Connects to Ray, deploys, and serves the front end's link socket until stopped or Ray goes away."""

    def __init__(self, endpoint: str, name: str, settings: dict[str, Any]) -> None:
        self.settings = settings
        self._context = zmq.asyncio.Context()
        self._link = self._context.socket(zmq.DEALER)
        self._link.linger = 0
        # The front end tells this link from an earlier one (still dying, say) by this name.
        self._link.routing_id = name.encode()
        self._link.connect(endpoint)
        self._parent = os.getppid()
        self._handle: Any = None
        self._problem: str | None = "connecting to " + self._where()
        self._replicas: list[dict[str, Any]] = []
        self._refs: OrderedDict[str, Any] = OrderedDict()
        self._tasks: set[asyncio.Task] = set()
        self._stop = asyncio.Event()
        self._bad = RateLimitedLog(log)
        # While the head is away the front end tells its clients every second; the log hears of it less often.
        self._waiting_log = RateLimitedLog(log, interval=30.0)

    async def run(self) -> int:
        """Start, then serve until stopped (by the front end, a signal, the front end's end or Ray's); the exit
        status: 0 stopped when asked, 1 could not start, 3 Ray stopped answering."""
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self._stop.set)
        starting = asyncio.create_task(self._start())
        stopping = asyncio.create_task(self._stop.wait())
        tasks = {asyncio.create_task(self._report()), starting, stopping}
        try:
            # Stopping wins over starting: waiting for a head that never comes must not outlive the front end.
            await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if not starting.done():
                return 0
            if starting.exception() is not None:
                return 1
            tasks.add(asyncio.create_task(self._receive()))
            await stopping
            return 0 if self._problem is None else 3
        finally:
            for task in tasks:
                task.cancel()

    async def _start(self) -> None:
        try:
            await self._wait_for_head()
            self._handle = await asyncio.wait_for(asyncio.to_thread(self._deploy), DEPLOY_TIMEOUT)
        except Exception as exc:  # noqa: BLE001 - whatever Ray raises, the front end is told in one line
            self._problem = f"cannot start the deployment on {self._where()}: {_first_line(exc)}"
            if self.settings["address"] is not None and os.environ.get("RAY_AUTH_MODE") != "token":
                self._problem += " (a cluster with token authentication needs RAY_AUTH_MODE=token and RAY_AUTH_TOKEN)"
            log.error("%s", self._problem)
            await self._send_state()
            raise
        self._problem = None
        await self._send_state()

    def close(self) -> None:
        self._link.close(linger=0)
        self._context.term()
        if self.settings["address"] is None and ray.is_initialized():
            ray.shutdown()  # the embedded cluster goes with its link

    def _where(self) -> str:
        address = self.settings["address"]
        return "an embedded Ray" if address is None else f"Ray at {address}"

    async def _wait_for_head(self) -> None:
        """Until the head's address answers: Ray itself would wait for minutes, saying nothing."""
        address = self.settings["address"]
        if address in (None, "auto"):
            return
        host, _, port = address.rpartition(":")
        while True:
            try:
                _, writer = await asyncio.wait_for(asyncio.open_connection(host.strip("[]"), int(port)), PROBE_TIMEOUT)
            except (OSError, asyncio.TimeoutError) as exc:
                self._problem = f"nothing answers at {address} ({_first_line(exc)}): is the Ray head running there?"
                self._waiting_log.warning("head", "%s", self._problem)
                await asyncio.sleep(STATE_INTERVAL)
                continue
            writer.close()
            self._problem = "connecting to " + self._where()
            return

    def _deploy(self) -> Any:
        """Connect to Ray (or start it here), and deploy unless the application already runs there."""
        address = self.settings["address"]
        if address is None:
            cpus = max(os.cpu_count() or 1, self.settings["replicas"] * self.settings["replica_cpus"])
            # "local": a Ray of its own, even where this machine has joined a cluster with `ray start`.
            ray.init(address="local", num_cpus=int(cpus + 0.999), include_dashboard=False, logging_level=logging.WARNING)
        else:
            ray.init(address=address, logging_level=logging.WARNING)
        serve.start(proxy_location="Disabled")
        running = serve.status().applications.get(APP_NAME)
        if running is not None and str(running.status).rsplit(".", 1)[-1] in ("RUNNING", "DEPLOYING"):
            log.info("Joining the deployment already running on %s", self._where())
        else:
            log.info("Deploying %s on %s", DEPLOYMENT_NAME, self._where())
            serve.run(self._app(), name=APP_NAME, route_prefix=None)
        return serve.get_app_handle(APP_NAME)

    def _app(self) -> Any:
        settings = self.settings
        gpus = settings["replica_gpus"]
        if gpus is None:
            gpus = 1.0 if ray.cluster_resources().get("GPU", 0) > 0 and settings["model"]["device"] != "cpu" else 0.0
        model = ModelOptions(**settings["model"])
        autoscale = tuple(settings["autoscale"]) if settings["autoscale"] else None
        resources = {"num_cpus": settings["replica_cpus"], "num_gpus": gpus}
        return build_app(model, settings["replicas"], autoscale, settings["max_batch"], settings["batch_wait_ms"], resources)

    # -- serving ---------------------------------------------------------------------------------------

    async def _receive(self) -> None:
        while True:
            frames = await self._link.recv_multipart()
            try:
                header, parts = unpack(frames)
                self._serve(header, parts)
            except (LinkError, KeyError, IndexError, TypeError, ValueError) as exc:
                self._bad.warning("link", "Dropped a link message: %s", _first_line(exc))

    def _serve(self, header: dict[str, Any], parts: list[bytes]) -> None:
        op = header["op"]
        if op == "avatar":
            image = np.frombuffer(parts[0], dtype=np.uint8).reshape(FRAME_SIZE, FRAME_SIZE, 3)
            self._refs[header["key"]] = ray.put(image)
            self._refs.move_to_end(header["key"])
            while len(self._refs) > AVATAR_REFS:
                self._refs.popitem(last=False)
        elif op == "stop":
            self._stop.set()
        elif op in ("predict", "pose"):
            task = asyncio.create_task(self._forward(op, header, parts))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        else:
            raise LinkError(f"unknown op {op!r}")

    async def _forward(self, op: str, header: dict[str, Any], parts: list[bytes]) -> None:
        request_id = header["id"]
        try:
            if op == "pose":
                pose, why = await asyncio.wait_for(self._handle.pose.remote(parts[0], header["enc"]), REQUEST_TIMEOUT)
                if pose is None:
                    await self._error(request_id, "rejected", why)
                else:
                    await self._link.send_multipart(pack({"op": "pose", "id": request_id}, pose))
                return
            ref = self._refs.get(header["avatar"])
            if ref is None:
                await self._error(request_id, "need_avatar", "avatar not in the object store")
                return
            self._refs.move_to_end(header["avatar"])
            request = FrameRequest(header["avatar"], ref, parts[0], header["enc"], header["quality"], parts[1] or None,
                                   MotionOptions(*header["motion"]))  # fmt: skip
            handle = self._handle.options(multiplexed_model_id=header["avatar"])
            reply = await asyncio.wait_for(handle.predict.remote(request), REQUEST_TIMEOUT)
            figures = {"replica": reply.replica, "pid": reply.pid, "batch": reply.batch, "stage_ms": reply.stage_ms,
                       "queue": reply.queue}  # fmt: skip
            if reply.error is not None:
                await self._error(request_id, reply.error, reply.message, figures)
            else:
                await self._link.send_multipart(pack({"op": "result", "id": request_id, **figures}, reply.payload, reply.pose))
        except _LOST as exc:
            self._bad.warning("lost", "A replica went away during a request: %s", _first_line(exc))
            await self._error(request_id, "lost", "the replica went away")
        except Exception as exc:  # noqa: BLE001 - a failing request must not stop the link
            self._bad.warning("failed", "A request failed on the replicas: %s", _first_line(exc))
            await self._error(request_id, "failed", _first_line(exc))

    async def _error(self, request_id: int, code: str, message: str, figures: dict[str, Any] | None = None) -> None:
        await self._link.send_multipart(pack({"op": "error", "id": request_id, "code": code, "message": message[:200],
                                              **(figures or {})}))  # fmt: skip

    # -- state ---------------------------------------------------------------------------------------------

    async def _report(self) -> None:
        """Tell the front end how things stand every second; give up when Ray stops answering or the front end is
        gone."""
        failures = 0
        while not self._stop.is_set():
            if os.getppid() != self._parent:
                log.warning("The worker front end went away; stopping")
                self._stop.set()
                return
            if self._handle is not None:
                try:
                    self._replicas = await asyncio.wait_for(asyncio.to_thread(_replicas), POLL_TIMEOUT)
                    failures = 0
                    self._problem = None
                except Exception as exc:  # noqa: BLE001 - Ray unreachable shows in many ways
                    failures += 1
                    self._problem = f"{self._where()} does not answer ({_first_line(exc) or type(exc).__name__})"
                    log.warning("%s", self._problem)
                    if failures >= FAILED_POLLS:
                        self._stop.set()
            await self._send_state()
            await asyncio.sleep(STATE_INTERVAL)

    async def _send_state(self) -> None:
        ready = self._handle is not None and self._problem is None
        header = {"op": "state", "ready": ready, "problem": self._problem, "replicas": self._replicas,
                  "address": self._where(), "deployment": f"{APP_NAME}/{DEPLOYMENT_NAME}"}  # fmt: skip
        with suppress(zmq.ZMQError):
            await self._link.send_multipart(pack(header))


def _replicas() -> list[dict[str, Any]]:
    """The deployment's replicas: id, state, process and node. Serve's public status counts replicas by state but
    names none, so this asks its controller for the details its dashboard shows; should that private call change
    in another Ray release, the counts alone are reported."""
    try:
        from ray.serve.context import _get_global_client

        details = _get_global_client().get_serve_details()
        application = (details.get("applications") or {}).get(APP_NAME) or {}
        deployment = (application.get("deployments") or {}).get(DEPLOYMENT_NAME) or {}
        return [
            {"id": replica.get("replica_id"), "state": str(replica.get("state")).rsplit(".", 1)[-1],
             "pid": replica.get("pid"), "node": replica.get("node_ip")}  # fmt: skip
            for replica in deployment.get("replicas") or []
        ]
    except (ImportError, AttributeError, TypeError):
        application = serve.status().applications.get(APP_NAME)
        deployment = application.deployments.get(DEPLOYMENT_NAME) if application is not None else None
        counts = deployment.replica_states if deployment is not None else {}
        states = [str(state).rsplit(".", 1)[-1] for state, count in counts.items() for _ in range(count)]
        return [{"id": f"replica {i + 1}", "state": state, "pid": None, "node": None} for i, state in enumerate(states)]


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:300]


def main(argv: list[str]) -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(message)s", stream=sys.stderr)
    bridge = Bridge(argv[0], argv[1], json.loads(argv[2]))
    loop = asyncio.new_event_loop()
    code = 1
    try:
        code = loop.run_until_complete(bridge.run())
    except Exception:  # noqa: BLE001 - logged; the front end starts another link
        log.exception("The link to Ray failed")
    finally:
        bridge.close()
    # Not asyncio.run, which waits for every worker thread: a thread stuck in a call to a cluster that is gone (Ray
    # waits long) must keep neither the loop nor this process alive.
    os._exit(code)


if __name__ == "__main__":
    main(sys.argv[1:])

"""The Ray executor: every chunk is a Ray task, on a cluster or on a local Ray instance.

Ray is optional and imported only here, only when asked for. The driver (this
process) plans the chunks, submits them all, and stores each result as it
comes back; the run folder lives on the driver's machine, so workers need no
shared disk. A task asks for ``threads`` CPUs and, on GPUs, ``gpus_per_chunk``
of a GPU (a fraction packs several chunks onto one GPU). Chunks are sized from
one probe task: the memory free on a worker's device, shared among the chunks
that will train side by side there.

Progress: a task's events go, as JSON lines, to a small actor (the hub) that
the driver drains a few times a second, so the front ends see the same events
as from a local run. Faults: a task whose worker dies is retried by Ray
(``max_retries``); a chunk out of GPU memory comes back to the runner, which
halves it; Ctrl-C cancels what is still running and the run resumes with
``toysup resume`` like a local one. A task's mid-chunk checkpoints go through
the object store to the driver, which writes them into the run folder, so a
resumed chunk goes on from its last one.
"""

from __future__ import annotations

import logging
import re
import signal
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import torch

from toysup import engine
from toysup.engine.checkpoint import TrainingState
from toysup.engine.errors import SpecError
from toysup.engine.events import from_json
from toysup.engine.executors.base import Executor, Placement, Work, run_chunk
from toysup.engine.plan import CPU_CHUNK_CAP, MEMORY_SHARE, Chunk, available_ram, configure_threads
from toysup.engine.train import ChunkResult

INSTALL_HINT = 'pip install "toysup[ray]" (or pip install ray)'
POLL_S = 0.2  # how often the driver relays progress and checks for a stop
PROBE_TIMEOUT_S = 600.0  # an autoscaling cluster may need minutes to start a worker
CONNECT_TIMEOUT_S = 5.0  # for a first TCP answer from --address


def import_ray() -> Any:
    """Ray, or a SpecError telling how to install it."""
    try:
        import ray  # deferred: an optional dependency
    except ImportError:
        raise SpecError(f"--backend ray needs Ray, which is not installed here: {INSTALL_HINT}") from None
    return ray


class RayExecutor(Executor):
    name = "ray"

    def __init__(self, address: str | None = None, gpus_per_chunk: float = 1.0, max_retries: int = 3) -> None:
        if not 0 < gpus_per_chunk <= 1:
            raise SpecError(f"--gpus-per-chunk {gpus_per_chunk:g} is not valid: expected a fraction of one GPU in "
                            "(0, 1], e.g. 0.25 to train four chunks side by side on each GPU")
        self.address = address or None
        self.gpus_per_chunk = gpus_per_chunk
        self.max_retries = max_retries
        self.queued: list[tuple[Chunk, TrainingState | None]] = []  # submitted, not yet handed to Ray
        self.pending: dict[Any, Chunk] = {}  # Ray object ref -> the chunk it will hold
        self._ray: Any = None
        self._owns_ray = False
        self._hub: Any = None
        self._task: Any = None
        self._kind = "cpu"
        self._threads = 1

    # --- connecting and placing -------------------------------------------------------------

    def open(self, device: str, threads: int | None) -> Placement:
        ray = self._ray = import_ray()
        if threads is not None and threads < 1:
            raise SpecError(f"--threads {threads} is not valid: expected a positive integer")
        self._threads = threads or 1
        if device not in ("auto", "cpu", "cuda"):
            raise SpecError(f"--device {device!r} is not valid with --backend ray: expected auto, cpu or cuda "
                            "(Ray decides which GPU each chunk gets)")
        if not ray.is_initialized():
            self._connect(ray)
        gpus = ray.cluster_resources().get("GPU", 0)
        if device == "cuda" and not gpus:
            raise SpecError("--device cuda: the Ray cluster has no GPUs; use --device cpu or auto")
        self._kind = "cuda" if device == "cuda" or (device == "auto" and gpus) else "cpu"
        nodes = [n for n in ray.nodes() if n.get("Alive")]
        need, unit = (self.gpus_per_chunk, "GPU") if self._kind == "cuda" else (self._threads, "CPU")
        largest = max((n["Resources"].get(unit, 0) for n in nodes), default=0)
        if largest < need:
            lower = "--threads" if unit == "CPU" else "--gpus-per-chunk"
            raise SpecError(f"a chunk would ask for {need:g} {unit}(s) but the largest node of the Ray cluster has "
                            f"{largest:g}: lower {lower}")
        options = {"num_cpus": self._threads, "num_gpus": self.gpus_per_chunk if self._kind == "cuda" else 0}
        self._task = ray.remote(_train_task).options(**options, max_retries=self.max_retries, retry_exceptions=False)
        self._hub = ray.remote(num_cpus=0)(ProgressHub).remote()
        try:
            probe = ray.get(ray.remote(_probe).options(**options).remote(self._kind), timeout=PROBE_TIMEOUT_S)
        except ray.exceptions.GetTimeoutError:
            raise SpecError(f"no Ray worker with {need:g} {unit}(s) free took a probe task in "
                            f"{PROBE_TIMEOUT_S:.0f} s") from None
        return self._placement(nodes, probe)

    def _connect(self, ray: Any) -> None:
        # The engine travels with the job, so workers run exactly the driver's code (they need torch installed).
        if self.address:
            _check_reachable(self.address)
        kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.ERROR,
                                  "runtime_env": {"py_modules": [engine]} if self.address else None}
        # ray.init replaces the SIGTERM handler (its own exits at once); ours records the run as interrupted.
        main = threading.current_thread() is threading.main_thread()
        handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)} if main else {}
        try:
            ray.init(address=self.address, **kwargs)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            where = f"--address {self.address}" if self.address else "a local Ray instance"
            raise SpecError(f"{where}: could not connect to Ray ({str(exc).splitlines()[0]})") from None
        finally:
            for sig, handler in handlers.items():
                if handler is not None:
                    signal.signal(sig, handler)
        self._owns_ray = True

    def _placement(self, nodes: list[dict[str, Any]], probe: dict[str, Any]) -> Placement:
        """Chunk budget and slots from the probe: a GPU's free memory shared by the chunks packed onto it, or a
        node's free RAM shared by the chunks its CPUs train at once."""
        node = next((n for n in nodes if n["NodeID"] == probe["node_id"]), nodes[0])
        if self._kind == "cuda":
            budget = int(probe["free_bytes"] * MEMORY_SHARE * self.gpus_per_chunk)
            slots = sum(int(n["Resources"].get("GPU", 0) / self.gpus_per_chunk + 1e-9) for n in nodes)
        else:
            per_node = max(1, int(node["Resources"].get("CPU", 1) // self._threads))
            budget = int(min(CPU_CHUNK_CAP, probe["free_bytes"] * MEMORY_SHARE / per_node))
            slots = sum(int(n["Resources"].get("CPU", 0) // self._threads) for n in nodes)
        slots = max(1, slots)
        what = probe["device_name"] if self._kind == "cuda" else "cpu"
        notes: tuple[str, ...] = ()
        if probe.get("torch", torch.__version__) != torch.__version__:
            notes = (f"Ray workers run torch {probe['torch']}, this driver {torch.__version__}: per-instance results "
                     "may differ from a local run's in the last digits",)
        return Placement(torch.device(self._kind), f"ray: {slots} x {what}", budget=budget, slots=slots, notes=notes)

    def record(self) -> dict[str, Any]:
        return {"address": self.address or "", "gpus_per_chunk": self.gpus_per_chunk,
                "ray_version": getattr(self._ray, "__version__", "")}

    # --- training ---------------------------------------------------------------------------

    def submit(self, chunk: Chunk, resume_from: TrainingState | None = None, front: bool = False) -> None:
        self.queued.append((chunk, resume_from))  # launched by finished(), which knows the run's checkpoint interval

    def finished(self, work: Work) -> Iterator[tuple[Chunk, ChunkResult | torch.OutOfMemoryError]]:
        ray = self._ray
        while self.pending or self.queued:
            for chunk, saved in self.queued:
                ref = self._task.remote(chunk, self._kind, self._threads, self._hub, saved, work.checkpoint_every_s,
                                         work.step_path)
                self.pending[ref] = chunk
            self.queued.clear()
            ready, _ = ray.wait(list(self.pending), num_returns=len(self.pending), timeout=POLL_S,
                                fetch_local=False)
            self._relay(work)
            if work.should_stop():
                raise KeyboardInterrupt
            for ref in ready:
                chunk = self.pending.pop(ref)
                try:
                    result = ray.get(ref)
                except ray.exceptions.RayTaskError as exc:
                    cause = exc.cause if isinstance(exc.cause, BaseException) else exc
                    if isinstance(cause, torch.OutOfMemoryError):
                        yield chunk, cause
                        continue
                    raise cause from None
                yield chunk, result  # its events were relayed above: the task waited for the hub before returning

    def _relay(self, work: Work) -> None:
        """Pass on the events, and write the checkpoints, that the tasks sent since the last call."""
        ray = self._ray
        lines, saved = ray.get(self._hub.drain.remote())
        for line in lines:
            work.emit(from_json(line))
        training = {chunk.index: chunk for chunk in self.pending.values()}
        for index, (ref,) in saved.items():
            if index not in training or work.checkpoint is None:
                continue  # the chunk finished meanwhile: its checkpoint is moot
            try:
                state = ray.get(ref)
            except ray.exceptions.RayError:
                continue  # its worker died with it; the next checkpoint (or the retry) will do
            work.checkpoint(training[index], state)

    def close(self) -> None:
        ray = self._ray
        if ray is None or not ray.is_initialized():
            return
        for ref in self.pending:
            ray.cancel(ref, force=True)
        self.pending.clear()
        self.queued.clear()
        if self._hub is not None:
            ray.kill(self._hub)
            self._hub = None
        if self._owns_ray:
            ray.shutdown()
            self._owns_ray = False


# A Ray endpoint speaks gRPC (HTTP/2). An HTTP/2 handshake alone is not enough to tell it from another
# HTTP/2 server, which then keeps ray.init waiting for minutes: the check makes one real gRPC call, the one
# ray.init starts with (the GCS's GetClusterId; a Ray Client server's ClusterInfo for ray://), and accepts
# only a gRPC answer to it: a reply message, or a gRPC status other than UNIMPLEMENTED (a cluster that wants
# a token answers UNAUTHENTICATED). gRPC's C core sends these header names as plain HPACK literals.
HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, RST_STREAM, SETTINGS, GOAWAY = 0, 1, 3, 4, 7
END_STREAM, END_HEADERS, ACK = 0x1, 0x4, 0x1
GRPC_STATUS = re.compile(rb"grpc-status[\x01-\x7f]([0-9]{1,2})")
UNIMPLEMENTED = b"12"
PROBE_METHODS = {"gcs": "/ray.rpc.NodeInfoGcsService/GetClusterId", "client": "/ray.rpc.RayletDriver/ClusterInfo"}


def _frame(kind: int, flags: int, stream: int, payload: bytes = b"") -> bytes:
    return len(payload).to_bytes(3, "big") + bytes([kind, flags]) + stream.to_bytes(4, "big") + payload


def _literal(name: str, value: str) -> bytes:
    """An HPACK header field, literal without indexing, plain (not Huffman) strings shorter than 127 bytes."""
    n, v = name.encode(), value.encode()[:126]
    return b"\x00" + bytes([len(n)]) + n + bytes([len(v)]) + v


def grpc_request(authority: str, method: str) -> bytes:
    """The bytes of a client preface, SETTINGS, and one unary gRPC call with an empty message on stream 1."""
    headers = b"".join(_literal(k, v) for k, v in ((":method", "POST"), (":scheme", "http"), (":path", method),
                                                   (":authority", authority), ("content-type", "application/grpc"),
                                                   ("te", "trailers")))
    return (HTTP2_PREFACE + _frame(SETTINGS, 0, 0) + _frame(HEADERS, END_HEADERS, 1, headers)
            + _frame(DATA, END_STREAM, 1, b"\x00\x00\x00\x00\x00"))


def grpc_replies(conn: socket.socket, deadline: float) -> bool:
    """Read HTTP/2 frames until stream 1 carries a gRPC message (True: a 5-byte prefix whose length matches
    the frame), or ends, is reset, or the connection goes away or falls silent (False)."""
    buffer = b""
    while time.monotonic() < deadline:
        conn.settimeout(max(0.05, deadline - time.monotonic()))
        try:
            block = conn.recv(65536)
        except TimeoutError:
            return False
        if not block:
            return False
        buffer += block
        if len(buffer) > 1 << 20:
            return False
        while len(buffer) >= 9:
            size = int.from_bytes(buffer[:3], "big")
            if len(buffer) < 9 + size:
                break
            kind, flags, stream = buffer[3], buffer[4], int.from_bytes(buffer[5:9], "big") & 0x7FFFFFFF
            payload, buffer = buffer[9:9 + size], buffer[9 + size:]
            if kind == SETTINGS and not flags & ACK:
                conn.sendall(_frame(SETTINGS, ACK, 0))
            elif kind == GOAWAY or (stream == 1 and kind == RST_STREAM):
                return False
            elif stream == 1 and kind == DATA and payload:
                return len(payload) >= 5 and payload[0] in (0, 1) and int.from_bytes(payload[1:5], "big") == size - 5
            elif stream == 1 and kind == HEADERS and (status := GRPC_STATUS.search(payload)) is not None:
                return status.group(1) != UNIMPLEMENTED
            elif stream == 1 and kind in (DATA, HEADERS) and flags & END_STREAM:
                return False  # the call ended without a gRPC answer: not the service Ray's first call needs
    return False


def _check_reachable(address: str) -> None:
    """Refuse, within seconds, an address where no Ray endpoint answers: Ray itself retries such an
    address for minutes (and a server speaking another protocol, HTTP/2 included, could keep it waiting
    for good). The check is one gRPC call Ray answers (see :data:`PROBE_METHODS`) under a short timeout;
    Ctrl-C and SIGTERM stop it at once."""
    if address in ("auto", "local"):
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise SpecError(f"--address {address!r} is not valid: expected HOST:PORT, ray://HOST:PORT or auto")
    hint = "start one with `ray start --head`, or leave --address out for a local Ray instance"
    method = PROBE_METHODS["client" if address.startswith("ray://") else "gcs"]
    deadline = time.monotonic() + CONNECT_TIMEOUT_S
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT_S) as conn:
            conn.sendall(grpc_request(f"{host}:{port}", method))
            answered = grpc_replies(conn, deadline)
    except TimeoutError:
        raise SpecError(f"--address {address}: no Ray endpoint answered within {CONNECT_TIMEOUT_S:g} s; "
                        f"{hint}") from None
    except OSError as exc:
        raise SpecError(f"--address {address}: no Ray cluster answers there ({exc.strerror or exc}); {hint}") from None
    if not answered:
        raise SpecError(f"--address {address}: something answers there, but not Ray (no reply to Ray's gRPC "
                        f"call within {CONNECT_TIMEOUT_S:g} s); {hint}")


class ProgressHub:
    """A Ray actor collecting the tasks' events (JSON lines) and newest checkpoints until the driver drains them."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.saved: dict[int, list[Any]] = {}  # chunk -> [object ref of its TrainingState], the newest only

    def push(self, line: str) -> None:
        self.lines.append(line)

    def save(self, chunk: int, ref: list[Any]) -> None:
        self.saved[chunk] = ref  # a ref inside a list stays a ref: the driver fetches it, the hub never does

    def drain(self) -> tuple[list[str], dict[int, list[Any]]]:
        lines, saved, self.lines, self.saved = self.lines, self.saved, [], {}
        return lines, saved

    def ping(self) -> bool:
        return True


def _train_task(chunk: Chunk, kind: str, threads: int, hub: Any, resume_from: TrainingState | None,
                checkpoint_every_s: float, step_path: str = "eager") -> ChunkResult:
    """A worker's body: train the chunk on the device Ray gave this task (its GPU shows as cuda:0).

    Checkpoints go into the object store, their refs to the hub, and the driver writes them to the run folder.
    """
    import ray  # deferred: an optional dependency (a worker has it)

    device = torch.device(kind)
    configure_threads(threads, device)

    def checkpoint(chunk: Chunk, state: TrainingState) -> None:
        hub.save.remote(chunk.index, [ray.put(state)])

    work = Work(emit=lambda event: hub.push.remote(event.to_json()), should_stop=lambda: False,
                checkpoint=checkpoint, checkpoint_every_s=checkpoint_every_s, step_path=step_path)
    try:
        return run_chunk(chunk, device, work, resume_from)
    finally:
        ray.get(hub.ping.remote())  # calls from one worker reach an actor in order: every event is in the hub


def _probe(kind: str) -> dict[str, Any]:
    """On a worker: its node, its device's name and the bytes free there."""
    import ray  # deferred: an optional dependency (a worker has it)

    if kind == "cuda":
        free, _total = torch.cuda.mem_get_info()
        name = torch.cuda.get_device_name()
    else:
        free, name = available_ram(), "cpu"
    return {"node_id": ray.get_runtime_context().get_node_id(), "device_name": name, "free_bytes": free,
            "torch": torch.__version__}

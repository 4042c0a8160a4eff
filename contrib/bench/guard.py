#!/usr/bin/env python3
"""What `guestlist guard` adds to the engine's API, in one run.

    contrib/bench/guard.py                  # N=100 containers, TRIALS=11
    TRIALS=21 contrib/bench/guard.py proxy  # only the proxy part
    GUESTLIST=path/to/guestlist contrib/bench/guard.py

Operations, each timed through the bare engine and through the guard alternately (which goes
first swaps trial by trial, after one untimed warm-up of each):
  ps        `docker ps` with N containers running
  inspect   `docker inspect` of the N containers
  run       `docker run -d` of one more container (tolerated by an allow rule)
  diff      `guestlist diff` over the N containers (all on the list)

  proxy     the host's engine (DOCKER_HOST) bare, against `guard --listen` in front of it
  memory    CLIENTS=60 clients each sending a create of BODY_MIB=15 MiB slowly to the proxy at
            once: the proxy's peak and settled resident memory (VmRSS, sampled every 50 ms),
            and `docker ps` through it meanwhile against before (GUESTLIST_OLD=path also
            measures another build the same way, for a before and after)
  plugin    two dockerds of the bench's own, started alike from the host's binaries by
            .ci/dockerd-in-root, each with the same N containers: one plain, one with
            `guard --plugin` as its authorization plugin (needs root)

Times are wall-clock medians in milliseconds. `ratio` is the median of the per-trial ratios
guarded/bare (pairing keeps it meaningful when the machine's speed drifts). The goal is a
ratio under 1.05 for each operation.
"""

import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import socket as sockets
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
N = int(os.environ.get("N", "100"))
TRIALS = int(os.environ.get("TRIALS", "11"))
IMAGE = os.environ.get("IMAGE", "guestlist-bench:1")
GUESTLIST = os.environ.get("GUESTLIST", str(ROOT / "target/release/guestlist"))
RUN = f"glguard{os.getpid()}"
WORK = Path(tempfile.mkdtemp(prefix="glguard."))
PLUGIN = f"{RUN}-plugin"
SPEC = Path("/etc/docker/plugins") / f"{PLUGIN}.spec"
LABEL = f"bench.run={RUN}"
BACKGROUND = []  # processes to end, last started first
ENGINES = []  # dockerds of the bench's own: their directories


def sh(*args, host=None, check=True, stdin=None):
    env = dict(os.environ)
    if host:
        env["DOCKER_HOST"] = host
    done = subprocess.run(args, input=stdin, env=env, capture_output=True)
    if check and done.returncode != 0:
        sys.exit(f"bench: {' '.join(args)} exited {done.returncode}:\n{done.stderr.decode()}")
    return done.stdout.decode()


def timed(args, env):
    started = time.perf_counter()
    done = subprocess.run(args, env=env, capture_output=True)
    elapsed = (time.perf_counter() - started) * 1000
    if done.returncode != 0:
        sys.exit(f"bench: {' '.join(args)} exited {done.returncode}:\n{done.stderr.decode()}")
    return elapsed


def environment(host, state):
    env = dict(os.environ)
    env["DOCKER_HOST"] = host
    env["GUESTLIST_STATE"] = str(state)
    env["GUESTLIST_AUDIT_LOG"] = str(WORK / "audit.jsonl")
    return env


def ensure_image(host):
    if subprocess.run(["docker", "-H", host, "image", "inspect", IMAGE],
                      capture_output=True).returncode == 0:
        return
    busybox = shutil.which("busybox")
    if not busybox:
        sys.exit("bench: install busybox-static, or set IMAGE to an image with sleep")
    root = WORK / "root"
    if not root.exists():
        (root / "bin").mkdir(parents=True)
        shutil.copy(busybox, root / "bin/busybox")
        for applet in ["sh", "sleep"]:
            (root / "bin" / applet).symlink_to("busybox")
    tar = subprocess.run(["tar", "-C", str(root), "-c", "."], capture_output=True, check=True)
    sh("docker", "-H", host, "import", "--change", 'CMD ["sleep", "3600"]', "-", IMAGE,
       stdin=tar.stdout)


def start_containers(host):
    """N containers named alike on every engine, so one list fits each."""
    def one(i):
        sh("docker", "-H", host, "run", "-d", "--name", f"{RUN}-{i}", "--label", LABEL,
           "--stop-timeout", "1", "-e", f"SETTING={i}", "--memory", "64m", IMAGE, "sleep", "3600")

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(one, range(N)))


def snapshot(host, state):
    subprocess.run([GUESTLIST, "snapshot", "--force", "--scope", f"label={LABEL}",
                    "--allow", f"label={LABEL}"], env=environment(host, state), check=True,
                   capture_output=True)


def wait_for(what, check, within=60):
    deadline = time.time() + within
    while not check():
        if time.time() > deadline:
            sys.exit(f"bench: {what} not within {within} s")
        time.sleep(0.1)


def answers(host):
    return subprocess.run(["docker", "-H", host, "version"], capture_output=True).returncode == 0


def background(args, env=None, log=None):
    out = open(log, "w") if log else subprocess.DEVNULL
    process = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT)
    BACKGROUND.append(process)
    return process


def own_engine(name, daemon_json):
    directory = WORK / name
    directory.mkdir()
    (directory / "daemon.json").write_text(daemon_json)
    background([str(ROOT / ".ci/dockerd-in-root"), "/", str(directory)],
               log=directory / "dockerd.log")
    ENGINES.append(directory)
    host = f"unix://{directory}/docker.sock"
    wait_for(f"the {name} engine", lambda: answers(host))
    return host


def operations(state):
    """Each operation as a function of the engine endpoint that runs it once."""
    names = [f"{RUN}-{i}" for i in range(N)]
    return {
        "ps": lambda host: ["docker", "-H", host, "ps"],
        "inspect": lambda host: ["docker", "-H", host, "inspect", *names],
        "run": lambda host: ["docker", "-H", host, "run", "-d", "--label", LABEL,
                             "--stop-timeout", "1", IMAGE, "sleep", "3600"],
        "diff": lambda host: [GUESTLIST, "--host", host, "diff"],
    }


def compare(title, bare, guarded, bare_state, guarded_state):
    print(f"\n{title}: bare {bare}, guarded {guarded}; N = {N}, {TRIALS} trials\n")
    print("| operation | bare (ms) | guarded (ms) | ratio |")
    print("| --- | --- | --- | --- |")
    runs = {
        "bare": (bare, environment(bare, bare_state)),
        "guarded": (guarded, environment(guarded, guarded_state)),
    }
    for name, command in operations(None).items():
        times = {"bare": [], "guarded": []}
        for key, (host, env) in runs.items():
            timed(command(host), env)
        for trial in range(TRIALS):
            order = ["bare", "guarded"] if trial % 2 == 0 else ["guarded", "bare"]
            for key in order:
                host, env = runs[key]
                times[key].append(timed(command(host), env))
        ratios = [g / b for g, b in zip(times["guarded"], times["bare"])]
        print(f"| {name} | {statistics.median(times['bare']):.1f} | "
              f"{statistics.median(times['guarded']):.1f} | {statistics.median(ratios):.3f} |")


def bench_proxy():
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    ensure_image(host)
    start_containers(host)
    state = WORK / "proxy-state.json"
    snapshot(host, state)
    socket = WORK / "guard.sock"
    background([GUESTLIST, "guard", "--listen", f"unix://{socket}"],
               env=environment(host, state), log=WORK / "proxy.log")
    guarded = f"unix://{socket}"
    wait_for("the proxy", lambda: answers(guarded))
    compare("proxy", host, guarded, state, state)


CLIENTS = int(os.environ.get("CLIENTS", "60"))
BODY_MIB = int(os.environ.get("BODY_MIB", "15"))


def rss_kib(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def slow_client(path, name, stop, chunked):
    """A create whose body of BODY_MIB MiB arrives in 64 KiB pieces, 20 a second: with its
    length declared, or chunked (no length known in advance)."""
    size = BODY_MIB << 20
    framing = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {size}"
    head = (f"POST /containers/create?name={name} HTTP/1.1\r\nHost: d\r\n"
            f"Content-Type: application/json\r\n{framing}\r\n\r\n").encode()
    piece = b"[" + b" " * (64 * 1024 - 1)
    if chunked:
        piece = f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
    conn = sockets.socket(sockets.AF_UNIX, sockets.SOCK_STREAM)
    try:
        conn.connect(str(path))
        conn.sendall(head)
        sent = 0
        while sent < size and not stop.is_set():
            conn.sendall(piece[:min(len(piece), size - sent)])
            sent += len(piece)
            time.sleep(0.05)
        conn.settimeout(5)
        return conn.recv(64).split(b"\r\n")[0].decode(errors="replace")
    except OSError as e:
        return f"closed ({e.__class__.__name__})"
    finally:
        conn.close()


def memory_of(binary, host, label, chunked):
    # Each build takes its own snapshot: an older one may not read a newer list.
    state = WORK / f"memory-{label}.json"
    subprocess.run([binary, "snapshot", "--force", "--scope", f"label={LABEL}"],
                   env=environment(host, state), check=True, capture_output=True)
    socket = WORK / f"{label}.sock"
    process = background([binary, "guard", "--listen", f"unix://{socket}"],
                         env=environment(host, state), log=WORK / f"{label}.log")
    guarded = f"unix://{socket}"
    wait_for("the proxy", lambda: answers(guarded))
    ps = ["docker", "-H", guarded, "ps"]
    idle = [timed(ps, os.environ) for _ in range(TRIALS)]
    start = rss_kib(process.pid)
    stop = threading.Event()
    peak = [start]
    busy = []

    def sample():
        while not stop.is_set():
            peak[0] = max(peak[0], rss_kib(process.pid))
            time.sleep(0.05)

    sampler = threading.Thread(target=sample)
    sampler.start()
    with ThreadPoolExecutor(CLIENTS) as pool:
        answers_ = [pool.submit(slow_client, socket, f"{RUN}-slow-{i}", stop, chunked)
                    for i in range(CLIENTS)]
        time.sleep(2)
        while not all(a.done() for a in answers_):
            busy.append(timed(ps, os.environ))
            time.sleep(0.5)
        outcomes = {}
        for a in answers_:
            key = a.result()
            outcomes[key] = outcomes.get(key, 0) + 1
    time.sleep(5)
    stop.set()
    sampler.join()
    settled = rss_kib(process.pid)
    process.terminate()
    process.wait()
    BACKGROUND.remove(process)
    framing = "chunked" if chunked else "length given"
    print(f"| {label} | {framing} | {start / 1024:.1f} | {peak[0] / 1024:.1f} | {settled / 1024:.1f} | "
          f"{statistics.median(idle):.1f} | "
          f"{statistics.median(busy) if busy else float('nan'):.1f} | "
          + ", ".join(f"{n}× {k}" for k, n in sorted(outcomes.items())) + " |")


def bench_memory():
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    ensure_image(host)
    sh("docker", "-H", host, "run", "-d", "--name", f"{RUN}-listed", "--label", LABEL, IMAGE,
       "sleep", "3600")
    print(f"\nmemory: {CLIENTS} clients each sending a {BODY_MIB} MiB create body at 1.25 MiB/s; "
          f"RSS in MiB, `docker ps` medians in ms\n")
    print("| build | body | RSS before | peak | 5 s after | ps idle | ps meanwhile | answers |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    builds = [("this", GUESTLIST)]
    if os.environ.get("GUESTLIST_OLD"):
        builds.append(("old", os.environ["GUESTLIST_OLD"]))
    for label, binary in builds:
        for chunked in (False, True):
            memory_of(binary, host, label, chunked)


def bench_plugin():
    if os.geteuid() != 0:
        print("\nplugin: skipped (needs root to run dockerds of its own)")
        return
    plain = own_engine("plain", "{}")
    ensure_image(plain)
    start_containers(plain)
    plain_state = WORK / "plain-state.json"
    snapshot(plain, plain_state)
    # The plugin first: dockerd does not start without it. Until the bench's containers run on
    # its engine (from an image of that engine's own), its list names none and tolerates them.
    guarded_state = WORK / "plugin-state.json"
    state = json.loads(plain_state.read_text())
    state["containers"] = []
    guarded_state.write_text(json.dumps(state))
    guarded_state.chmod(0o600)
    socket = WORK / "plugin.sock"
    SPEC.parent.mkdir(parents=True, exist_ok=True)
    SPEC.write_text(f"unix://{socket}\n")
    guarded = f"unix://{WORK}/plugin/docker.sock"
    background([GUESTLIST, "guard", "--plugin", PLUGIN, "--socket", str(socket)],
               env=environment(guarded, guarded_state), log=WORK / "plugin.log")
    wait_for("the plugin", socket.exists)
    own_engine("plugin", f'{{"authorization-plugins": ["{PLUGIN}"]}}')
    ensure_image(guarded)
    start_containers(guarded)
    snapshot(guarded, guarded_state)
    compare("plugin", plain, guarded, plain_state, guarded_state)


def cleanup():
    # Shut down as systemd would: dockerd stops its containers (1 s each, at once) and exits.
    pids = []
    for directory in ENGINES:
        try:
            pid = int((directory / "dockerd.pid").read_text())
            os.kill(pid, signal.SIGTERM)
            pids.append(pid)
        except (OSError, ValueError):
            pass
    for pid in pids:
        wait_for("an engine's end", lambda: not Path(f"/proc/{pid}").exists(), 60)
    for process in reversed(BACKGROUND):
        process.terminate()
        process.wait()
    SPEC.unlink(missing_ok=True)
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    ids = sh("docker", "-H", host, "ps", "-aq", "--filter", f"label={LABEL}", check=False).split()
    for i in range(0, len(ids), 100):
        sh("docker", "-H", host, "rm", "-f", *ids[i:i + 100], check=False)
    shutil.rmtree(WORK, ignore_errors=True)


def main():
    if not os.access(GUESTLIST, os.X_OK):
        subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
    wanted = sys.argv[1:] or ["proxy", "plugin", "memory"]
    print(f"guestlist guard, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
          f"{os.cpu_count()} cores")
    try:
        if "proxy" in wanted:
            bench_proxy()
        if "plugin" in wanted:
            bench_plugin()
        if "memory" in wanted:
            bench_memory()
    except SystemExit:
        for log in sorted(WORK.glob("*.log")):
            print(f"--- {log.name} (last lines)\n" + "\n".join(log.read_text().splitlines()[-15:]))
        raise
    finally:
        cleanup()


if __name__ == "__main__":
    main()

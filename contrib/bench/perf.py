#!/usr/bin/env python3
"""What a guestlist pass costs, next to the tools a user would otherwise pick, in one run.

    contrib/bench/perf.py                       # all scenarios, TRIALS=7, sizes 10 100 500
    TRIALS=11 SIZES="10 100" contrib/bench/perf.py diff restore
    GUESTLIST=path/to/guestlist contrib/bench/perf.py

Scenarios (each alternates guestlist and its baseline trial by trial, swapping which goes
first, after one untimed warm-up of each):
  diff      `guestlist diff` over N in-sync containers  vs  `docker inspect` of the same N;
            also a no-op `guestlist enforce`, its peak memory, and the time per container
  restore   `guestlist enforce` recreating 10 deleted of N allowed containers  vs  the docker
            CLI recreating the same 10 in parallel (`xargs -P 10 docker run -d ...`)
  remove    `guestlist enforce --stop-timeout 0` removing 10 extras beside N allowed containers
            vs  `docker rm -f` of them; and (at the first N) 10 extras that ignore SIGTERM with
            `--stop-timeout 2s`: one grace period, not 10
  compose   a no-op `guestlist enforce` over 20 containers  vs  `docker-compose up -d
            --remove-orphans` over the same 20 services (each tool keeps its own 20), and both
            restoring 5 deleted ones
  notify    `guestlist enforce --notify URL`  vs  the same pass without it, beside 10 allowed
            containers: in sync (nothing to tell), removing an extra told to a receiver on
            127.0.0.1 that answers 204, and told to one that never answers (the 5 s bound)

Every container is labelled with this run's id and removed at the end, whatever happens.
Needs: docker, docker-compose (for `compose`), busybox (busybox-static) unless $IMAGE exists.
Times are wall-clock medians in milliseconds; a ratio is guestlist's median over the
baseline's (below 1.0: guestlist is faster).
"""

import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TRIALS = int(os.environ.get("TRIALS", "7"))
SIZES = [int(n) for n in os.environ.get("SIZES", "10 100 500").split()]
IMAGE = os.environ.get("IMAGE", "guestlist-bench:1")
GUESTLIST = os.environ.get("GUESTLIST", str(ROOT / "target/release/guestlist"))
RUN = f"glperf{os.getpid()}"
WORK = Path(tempfile.mkdtemp(prefix="glperf."))
SCENARIOS = ["diff", "restore", "remove", "compose", "notify"]
# The command every benchmark container runs. Busybox `sleep` as PID 1 ignores SIGTERM: a stop
# waits out its whole grace period, which the slow-stopper scenario relies on.
SLEEP = ["sleep", "3600"]
# What every container is run with: a configuration of the size a real service has (some
# environment, labels, limits, a tmpfs), so an inspect weighs what it weighs in production.
OPTIONS = [
    *[arg for i in range(8) for arg in ("-e", f"SETTING_{i}=value-{i}-{'x' * 24}")],
    *[arg for i in range(6) for arg in ("--label", f"org.example.label{i}=value-{i}")],
    "--label", f"bench.run={RUN}",
    "--restart", "unless-stopped",
    "--memory", "64m",
    "--pids-limit", "100",
    "--tmpfs", "/run:size=1m",
]


def sh(*args, check=True, stdin=None):
    """Run a setup command quietly; a failure that matters ends the bench with its output."""
    done = subprocess.run(args, input=stdin, text=True, capture_output=True)
    if check and done.returncode != 0:
        sys.exit(f"bench: {' '.join(args)} exited {done.returncode}:\n{done.stderr}")
    return done


def timed(args, env=None, stdin=None):
    """Wall time of one run in ms; a failed run ends the bench."""
    started = time.perf_counter()
    done = subprocess.run(args, env=env, input=stdin, text=True, capture_output=True)
    elapsed = (time.perf_counter() - started) * 1000
    if done.returncode != 0:
        sys.exit(f"bench: {' '.join(args)} exited {done.returncode}:\n{done.stdout}{done.stderr}")
    return elapsed


def peak_mib(args, env, runs=3):
    """The largest peak resident memory of a few runs, from GNU time: the kernel's own count
    for a child includes what its parent had before exec, so Python cannot measure it."""
    if not os.access("/usr/bin/time", os.X_OK):
        return "n/a (install GNU time)"
    out = WORK / "rss"
    peak = 0
    for _ in range(runs):
        timed(["/usr/bin/time", "-f", "%M", "-o", str(out), *args], env)
        peak = max(peak, int(out.read_text().split()[-1]))
    return f"{peak / 1024:.1f} MiB"


def guestlist_env(state):
    env = dict(os.environ)
    env["GUESTLIST_STATE"] = str(state)
    env["GUESTLIST_AUDIT_LOG"] = str(WORK / "audit.jsonl")
    env.pop("GUESTLIST_RUN_DIR", None)
    return env


def ensure_image():
    if sh("docker", "image", "inspect", IMAGE, check=False).returncode == 0:
        return
    busybox = shutil.which("busybox")
    if not busybox:
        sys.exit("bench: install busybox-static, or set IMAGE to an image with sleep")
    root = WORK / "root"
    (root / "bin").mkdir(parents=True)
    shutil.copy(busybox, root / "bin/busybox")
    for applet in ["sh", "sleep"]:
        (root / "bin" / applet).symlink_to("busybox")
    tar = subprocess.Popen(["tar", "-C", str(root), "-c", "."], stdout=subprocess.PIPE)
    subprocess.run(
        ["docker", "import", "--change", 'CMD ["sleep", "3600"]', "-", IMAGE],
        stdin=tar.stdout,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    tar.wait()


def run_args(name, *labels):
    """The `docker run` arguments of one benchmark container."""
    extra = [arg for label in labels for arg in ("--label", label)]
    return ["--name", name, *OPTIONS, *extra, IMAGE, *SLEEP]


def start_all(arg_lists, parallel=8):
    def one(args):
        sh("docker", "run", "-d", *args)

    with ThreadPoolExecutor(parallel) as pool:
        list(pool.map(one, arg_lists))


def remove(names):
    names = list(names)
    for i in range(0, len(names), 100):
        sh("docker", "rm", "-f", *names[i : i + 100], check=False)


def ids(label):
    out = sh("docker", "ps", "-aq", "--filter", f"label={label}").stdout
    return out.split()


def snapshot(state, scope):
    env = guestlist_env(state)
    subprocess.run(
        [GUESTLIST, "snapshot", "--force", "--scope", scope],
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return env


class Samples:
    """Wall times per command, filled trial by trial."""

    def __init__(self):
        self.ms = {}

    def add(self, key, ms):
        self.ms.setdefault(key, []).append(ms)

    def median(self, key):
        return statistics.median(self.ms[key])


def alternate(samples, runs, prepare=None):
    """One untimed warm-up of each run, then TRIALS timed rounds. `runs` maps a key to a
    function that performs one timed run; `prepare(key)` resets the host before each."""
    keys = list(runs)
    for key in keys:
        if prepare:
            prepare(key)
        runs[key]()
    for trial in range(TRIALS):
        order = keys if trial % 2 == 0 else list(reversed(keys))
        for key in order:
            if prepare:
                prepare(key)
            samples.add(key, runs[key]())


def row(cells):
    print("| " + " | ".join(str(c) for c in cells) + " |")


def table(header):
    row(header)
    row(["---"] * len(header))


def ratio(a, b):
    return f"{a / b:.2f}"


def bench_diff():
    print(f"\n### diff over N in-sync containers (docker inspect is the floor), {TRIALS} trials\n")
    table(["N", "guestlist diff", "docker inspect", "ratio", "diff per container",
           "no-op enforce", "enforce peak RSS"])
    for n in SIZES:
        label = f"bench.diff={RUN}-{n}"
        names = [f"{RUN}-d{n}-{i}" for i in range(n)]
        start_all([run_args(name, label) for name in names])
        try:
            env = snapshot(WORK / f"diff{n}.json", f"label={label}")
            containers = ids(label)
            assert len(containers) == n, f"expected {n} containers, found {len(containers)}"
            samples = Samples()
            alternate(samples, {
                "diff": lambda: timed([GUESTLIST, "diff"], env),
                "inspect": lambda: timed(["docker", "inspect", *containers]),
                "enforce": lambda: timed([GUESTLIST, "enforce"], env),
            })
            d, i, e = (samples.median(k) for k in ("diff", "inspect", "enforce"))
            row([n, f"{d:.1f}", f"{i:.1f}", ratio(d, i), f"{d / n:.2f}", f"{e:.1f}",
                 peak_mib([GUESTLIST, "enforce"], env)])
        finally:
            remove(names)


def allowed_set(n, kind):
    """n in-sync containers in a scope of their own, snapshotted: the host a pass acts on."""
    label = f"bench.{kind}={RUN}-{n}"
    names = [f"{RUN}-{kind[0]}{n}-{i}" for i in range(n)]
    start_all([run_args(name, label) for name in names])
    env = snapshot(WORK / f"{kind}{n}.json", f"label={label}")
    return label, names, env


def bench_restore():
    """10 of N allowed containers deleted: guestlist recreates them, or the docker CLI does."""
    print(f"\n### recreating 10 deleted of N allowed containers, {TRIALS} trials\n")
    table(["N", "guestlist enforce", "xargs -P 10 docker run -d", "ratio"])
    for n in SIZES:
        label, names, env = allowed_set(n, "restore")
        deleted = names[:10]
        lines = "".join(" ".join(run_args(name, label)) + "\n" for name in deleted)
        try:
            samples = Samples()
            alternate(
                samples,
                {
                    "guestlist": lambda: timed([GUESTLIST, "enforce"], env),
                    "docker": lambda: timed(
                        ["xargs", "-P", "10", "-L", "1", "docker", "run", "-d"], stdin=lines
                    ),
                },
                prepare=lambda _: remove(deleted),
            )
            g, d = samples.median("guestlist"), samples.median("docker")
            row([n, f"{g:.0f}", f"{d:.0f}", ratio(g, d)])
        finally:
            remove(names)


def bench_remove():
    """10 extras among N allowed containers: guestlist removes them, or `docker rm -f` does;
    and 10 that ignore SIGTERM, stopped with a grace period: one grace period, not 10."""
    print(f"\n### removing 10 extras beside N allowed containers, {TRIALS} trials\n")
    table(["N", "case", "guestlist enforce", "docker", "ratio"])
    grace = 2
    for n in SIZES:
        label, names, env = allowed_set(n, "remove")
        extras = [f"{RUN}-x{n}-{i}" for i in range(10)]

        def create(_):
            remove(extras)
            start_all([run_args(name, label) for name in extras], parallel=10)

        try:
            samples = Samples()
            alternate(
                samples,
                {
                    "guestlist": lambda: timed([GUESTLIST, "enforce", "--stop-timeout", "0"], env),
                    "docker": lambda: timed(["docker", "rm", "-f", *extras]),
                },
                prepare=create,
            )
            g, d = samples.median("guestlist"), samples.median("docker")
            row([n, "`--stop-timeout 0` vs `docker rm -f`", f"{g:.0f}", f"{d:.0f}", ratio(g, d)])
            if n != SIZES[0]:
                continue
            # Slow stoppers: each takes the whole grace period, so serial stops would take 10.
            slow = Samples()
            alternate(
                slow,
                {
                    "guestlist": lambda: timed(
                        [GUESTLIST, "enforce", "--stop-timeout", f"{grace}s"], env
                    ),
                    "docker": lambda: timed(["docker", "stop", "-t", str(grace), *extras]),
                },
                prepare=create,
            )
            g, d = slow.median("guestlist"), slow.median("docker")
            row([n, f"ignoring SIGTERM, `--stop-timeout {grace}s` vs `docker stop -t {grace}`",
                 f"{g:.0f}", f"{d:.0f}", ratio(g, d)])
        finally:
            remove(extras + names)


def compose_file(n):
    services = "".join(
        f"  s{i}:\n    image: {IMAGE}\n    command: {SLEEP}\n    environment: [MODE=bench]\n"
        f"    restart: unless-stopped\n    labels: [bench.run={RUN}]\n"
        for i in range(n)
    )
    path = WORK / "compose.yaml"
    path.write_text(f'version: "2.4"\nservices:\n{services}')
    return path


def bench_compose():
    if not shutil.which("docker-compose"):
        sys.exit("bench: the compose scenario needs docker-compose (Debian: docker-compose)")
    n, deleted = 20, 5
    path = compose_file(n)
    # Each tool keeps its own copy of the same 20 services: compose the project `c`, guestlist
    # the project `g`, which compose created once and guestlist then took over.
    projects = {"compose": f"{RUN}c", "guestlist": f"{RUN}g"}

    def compose(project, *args):
        return ["docker-compose", "--no-ansi", "-f", str(path), "-p", project, *args]

    for project in projects.values():
        sh(*compose(project, "up", "-d"))
    env = snapshot(WORK / "compose.json", f"label=com.docker.compose.project={projects['guestlist']}")
    runs = {
        "guestlist": lambda: timed([GUESTLIST, "enforce"], env),
        "compose": lambda: timed(compose(projects["compose"], "up", "-d", "--remove-orphans")),
    }

    def delete_some(key):
        project = projects[key]
        remove(f"{project}_s{i}_1" for i in range(deleted))

    try:
        noop, restore = Samples(), Samples()
        alternate(noop, runs)
        alternate(restore, runs, prepare=delete_some)
        print(f"\n### {n} services: guestlist vs docker-compose, {TRIALS} trials\n")
        table(["case", "guestlist enforce", "docker-compose up -d --remove-orphans", "speed-up"])
        for case, s in [("no-op", noop), (f"restore {deleted} deleted", restore)]:
            g, c = s.median("guestlist"), s.median("compose")
            row([case, f"{g:.0f}", f"{c:.0f}", f"{c / g:.1f}x"])
    finally:
        for project in projects.values():
            sh(*compose(project, "down", "--timeout", "0"), check=False)


class Receiver:
    """A webhook receiver on 127.0.0.1 that answers 204, or (`hang`) never answers."""

    def __init__(self, hang):
        receiver = self
        self.requests = 0

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.requests += 1
                if hang:
                    time.sleep(60)
                    return
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"


def bench_notify():
    print(f"\n### `enforce --notify` vs `enforce` beside 10 allowed containers, {TRIALS} trials\n")
    table(["case", "with --notify", "without", "ratio", "requests received"])
    label, names, env = allowed_set(10, "notify")
    extra = f"{RUN}-n-extra"

    def create(_):
        remove([extra])
        start_all([run_args(extra, label)])

    enforce = [GUESTLIST, "enforce", "--stop-timeout", "0"]
    cases = [
        ("in sync, nothing to tell", False, None),
        ("1 extra removed, the receiver answers 204", False, create),
        ("1 extra removed, the receiver never answers", True, create),
    ]
    try:
        for case, hang, prepare in cases:
            receiver = Receiver(hang)
            samples = Samples()
            alternate(
                samples,
                {
                    "notify": lambda: timed([*enforce, "--notify", receiver.url], env),
                    "plain": lambda: timed(enforce, env),
                },
                prepare=prepare,
            )
            n, p = samples.median("notify"), samples.median("plain")
            row([case, f"{n:.0f}", f"{p:.0f}", ratio(n, p), receiver.requests])
            receiver.server.shutdown()
    finally:
        remove([extra, *names])


def machine():
    version = sh("docker", "version", "--format",
                 "{{.Server.Version}} (API {{.Server.APIVersion}})").stdout.strip()
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")),
               "unknown CPU")
    print(f"guestlist {GUESTLIST}; Docker {version}; {os.cpu_count()} cores ({cpu}); "
          f"kernel {platform.release()}; {time.strftime('%Y-%m-%d')}")


def main():
    chosen = sys.argv[1:] or SCENARIOS
    unknown = set(chosen) - set(SCENARIOS)
    if unknown:
        sys.exit(f"bench: unknown scenario {', '.join(sorted(unknown))}; choose from {SCENARIOS}")
    if not os.access(GUESTLIST, os.X_OK):
        subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
    ensure_image()
    machine()
    try:
        for scenario in chosen:
            globals()[f"bench_{scenario}"]()
    finally:
        remove(ids(f"bench.run={RUN}"))
        shutil.rmtree(WORK, ignore_errors=True)


if __name__ == "__main__":
    main()

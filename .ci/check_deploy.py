"""The deployment files under deploy/ against each other, the binary and CI (called by .ci/check-deploy).

No container engine or cluster runs here, so this checks what can be checked without one: every YAML file parses;
the Kubernetes objects, the compose file and the Dockerfile carry the fields the deployment depends on (probes,
non-root, read-only root file system, no shell at run time, one store and one master key for every replica, a
data directory per replica); the routing file they mount is the same everywhere and `idguard check` accepts it;
every subcommand, flag and IDGUARD_* variable they use is one the binary knows; and the Dockerfile builds with the
command and toolchain CI uses.

usage: check_deploy.py REPO_ROOT IDGUARD_BINARY
Prints one line per problem and exits 1 if there is any.
"""

import json
import pathlib
import re
import shlex
import subprocess
import sys

import yaml

ROOT = pathlib.Path(sys.argv[1]).resolve()
BIN = sys.argv[2]
DEPLOY = ROOT / "deploy"
ROUTING = DEPLOY / "config" / "idguard.toml"
IMAGE_BIN = "/usr/local/bin/idguard"
# Runtime bases with no shell (distroless's :debug tags carry busybox, so they are not among them).
SHELL_LESS_BASES = re.compile(r"^(scratch|gcr\.io/distroless/(static|cc|base)(-debian\d+)?(:(nonroot|latest))?(@sha256:[0-9a-f]{64})?)$")

problems = []


def problem(where, message):
    problems.append(f"{where}: {message}")


def rel(path):
    return path.relative_to(ROOT).as_posix()


# ---- the binary: what it accepts ------------------------------------------------------------------------------

_help = {}


def help_text(sub):
    if sub not in _help:
        out = subprocess.run([BIN, sub, "--help"], capture_output=True, text=True)
        _help[sub] = out.stdout if out.returncode == 0 else None
    return _help[sub]


def known_env_vars():
    names = set(re.findall(r'"(IDGUARD_[A-Z_]+)"', (ROOT / "config/src/env.rs").read_text()))
    names |= set(re.findall(r'env = "(IDGUARD_[A-Z_]+)"', (ROOT / "src/cli.rs").read_text()))
    return names


KNOWN_ENV = known_env_vars()


def check_command(where, argv):
    """argv: the arguments after the binary. The subcommand and every --flag must be in its --help."""
    if not argv:
        problem(where, "no subcommand")
        return
    sub = argv[0]
    text = help_text(sub)
    if text is None:
        problem(where, f"`idguard {sub}` is not a subcommand of the binary")
        return
    for arg in argv[1:]:
        flag = arg.split("=", 1)[0]
        if flag.startswith("--") and not re.search(rf"(^|[\s,]){re.escape(flag)}\b", text, re.M):
            problem(where, f"`idguard {sub}` has no flag {flag}")


def check_env(where, names):
    for name in names:
        if name.startswith("IDGUARD_") and name not in KNOWN_ENV:
            problem(where, f"{name} is not a variable idguard reads (config/src/env.rs, src/cli.rs)")


# ---- the routing file every container deployment mounts -------------------------------------------------------

routing_text = ROUTING.read_text()
run = subprocess.run([BIN, "check", "--config", str(ROUTING)], capture_output=True, text=True,
                     env={"PATH": "/usr/bin:/bin"})
if run.returncode != 0:
    problem(rel(ROUTING), f"`idguard check` refuses it:\n{run.stdout}{run.stderr}")


def listener_port(name):
    m = re.search(rf'^\s*{name}\s*=\s*"([^"]+)"', routing_text, re.M)
    if not m:
        problem(rel(ROUTING), f"[listeners] {name} is not set")
        return None, None
    host, _, port = m.group(1).rpartition(":")
    return host, int(port)


public_host, PUBLIC_PORT = listener_port("public")
admin_host, ADMIN_PORT = listener_port("admin")
if admin_host not in ("0.0.0.0", "[::]"):
    problem(rel(ROUTING), f"[listeners] admin binds {admin_host}: probes from outside the container cannot reach it")


# ---- every YAML file parses ---------------------------------------------------------------------------------------

docs = {}
for path in sorted(DEPLOY.rglob("*.y*ml")):
    try:
        docs[path] = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    except yaml.YAMLError as e:
        problem(rel(path), f"does not parse: {e}")


# ---- Kubernetes ---------------------------------------------------------------------------------------------------

K8S = DEPLOY / "kubernetes"
objects = {}
for path, items in docs.items():
    if path.parent != K8S:
        continue
    for obj in items:
        if not isinstance(obj, dict) or "kind" not in obj or "apiVersion" not in obj:
            problem(rel(path), "not a Kubernetes object (kind, apiVersion)")
            continue
        objects.setdefault(obj["kind"], []).append((path, obj))


def one(kind):
    found = objects.get(kind, [])
    if len(found) != 1:
        problem("deploy/kubernetes", f"expected one {kind}, found {len(found)}")
        return None, {}
    return found[0]


kpath, kust = one("Kustomization")
if kust:
    listed = set(kust.get("resources", []))
    present = {p.name for p in K8S.glob("*.y*ml") if p.name not in ("kustomization.yaml", "kustomization.yml")}
    for missing in sorted(present - listed):
        problem(rel(kpath), f"resources does not list {missing}")
    for extra in sorted(listed - present):
        problem(rel(kpath), f"resources lists {extra}, which does not exist")

dpath, dep = one("Deployment")
cpath, cm = one("ConfigMap")
spath, secret = one("Secret")
svpath, svc = one("Service")

if dep:
    where = rel(dpath)
    pod = dep["spec"]["template"]["spec"]
    labels = dep["spec"]["template"]["metadata"].get("labels", {})
    if dep["spec"]["selector"].get("matchLabels", {}).items() - labels.items():
        problem(where, "spec.selector.matchLabels does not match the pod template's labels")
    psc = pod.get("securityContext", {})
    if psc.get("runAsNonRoot") is not True:
        problem(where, "pod securityContext.runAsNonRoot must be true")
    if psc.get("runAsUser", 0) == 0:
        problem(where, "pod securityContext.runAsUser must be a non-root uid")
    containers = [c for c in pod.get("containers", []) if c.get("image", "").startswith("idguard")]
    if len(containers) != 1:
        problem(where, "expected one idguard container")
    for c in containers:
        cw = f"{where}: container {c.get('name')}"
        sc = c.get("securityContext", {})
        if sc.get("readOnlyRootFilesystem") is not True:
            problem(cw, "securityContext.readOnlyRootFilesystem must be true")
        if sc.get("allowPrivilegeEscalation") is not False:
            problem(cw, "securityContext.allowPrivilegeEscalation must be false")
        if "ALL" not in sc.get("capabilities", {}).get("drop", []):
            problem(cw, "securityContext.capabilities.drop must hold ALL")
        ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
        if PUBLIC_PORT not in ports.values() or ADMIN_PORT not in ports.values():
            problem(cw, f"ports must hold the routing file's public {PUBLIC_PORT} and admin {ADMIN_PORT}")

        def probe_port(probe):
            p = probe.get("httpGet", {}).get("port")
            return ports.get(p, p)

        for kind, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
            probe = c.get(kind)
            if not probe:
                problem(cw, f"no {kind}")
                continue
            if probe.get("httpGet", {}).get("path") != path:
                problem(cw, f"{kind} must GET {path}")
            if probe_port(probe) != ADMIN_PORT:
                problem(cw, f"{kind} must probe the admin listener's port {ADMIN_PORT}")
        check_command(cw, c.get("args", []))
        env = {e["name"]: e for e in c.get("env", [])}
        check_env(cw, env)
        mounts = {m["mountPath"]: m for m in c.get("volumeMounts", [])}
        volumes = {v["name"]: v for v in pod.get("volumes", [])}

        def mount_of(file_path):
            """The (mount, volume) a file path lies under."""
            for mp, m in mounts.items():
                if file_path == mp or file_path.startswith(mp.rstrip("/") + "/"):
                    return m, volumes.get(m["name"], {})
            return None, {}

        def env_value(name):
            v = env.get(name, {}).get("value")
            if v is None:
                problem(cw, f"env {name} is not set")
            return v

        config = env_value("IDGUARD_CONFIG")
        if config:
            m, v = mount_of(config)
            if not m or "configMap" not in v:
                problem(cw, f"IDGUARD_CONFIG {config} is not on a ConfigMap volume")
            elif cm and v["configMap"]["name"] != cm["metadata"]["name"]:
                problem(cw, f"the routing volume names ConfigMap {v['configMap']['name']}, not {cm['metadata']['name']}")
            elif m.get("subPath"):
                problem(cw, "the routing file is mounted with subPath: edits would never reach the pod")
            key = pathlib.PurePosixPath(config).name
            if cm and key not in cm.get("data", {}):
                problem(rel(cpath), f"data has no {key}")
        keyfile = env_value("IDGUARD_MASTER_KEY_FILE")
        if keyfile:
            m, v = mount_of(keyfile)
            if not m or "secret" not in v:
                problem(cw, f"IDGUARD_MASTER_KEY_FILE {keyfile} is not on a Secret volume")
            else:
                if secret and v["secret"]["secretName"] != secret["metadata"]["name"]:
                    problem(cw, "the key volume names another Secret")
                items = {i["path"]: i["key"] for i in v["secret"].get("items", [])}
                key = items.get(pathlib.PurePosixPath(keyfile).name)
                values = {**secret.get("data", {}), **secret.get("stringData", {})} if secret else {}
                if key is None or key not in values:
                    problem(cw, f"the Secret holds nothing mounted at {keyfile}")
        if "IDGUARD_MASTER_KEY" in env:
            problem(cw, "the master key belongs in a mounted file (IDGUARD_MASTER_KEY_FILE), not the environment")
        data_dir = env_value("IDGUARD_DATA_DIR")
        if data_dir:
            m, v = mount_of(data_dir)
            if not m or m.get("readOnly") or not ("emptyDir" in v or "persistentVolumeClaim" in v):
                problem(cw, f"IDGUARD_DATA_DIR {data_dir} must be a writable volume (the root file system is read-only)")
        if dep["spec"].get("replicas", 1) > 1 and "IDGUARD_REDIS_URL" not in env:
            problem(cw, "more than one replica needs the Redis store: set IDGUARD_REDIS_URL")
        grace = pod.get("terminationGracePeriodSeconds", 30)
        pre_stop = c.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)
        if grace < 30 + pre_stop:
            problem(cw, f"terminationGracePeriodSeconds {grace} is shorter than the 30 s drain plus preStop")

if cm:
    text = cm.get("data", {}).get(ROUTING.name)
    if text is not None and text != routing_text:
        problem(rel(cpath), f"data.{ROUTING.name} differs from {rel(ROUTING)}: keep them the same")

if svc and dep:
    where = rel(svpath)
    labels = dep["spec"]["template"]["metadata"].get("labels", {})
    if svc["spec"].get("selector", {}).items() - labels.items():
        problem(where, "spec.selector does not select the Deployment's pods")
    names = {p["name"]: p["containerPort"] for c in dep["spec"]["template"]["spec"]["containers"] for p in c.get("ports", [])}
    targets = {names.get(p.get("targetPort"), p.get("targetPort")) for p in svc["spec"].get("ports", [])}
    if PUBLIC_PORT not in targets:
        problem(where, f"does not expose the public listener ({PUBLIC_PORT})")
    if ADMIN_PORT in targets:
        problem(where, f"exposes the admin listener ({ADMIN_PORT}): keep it off the Service")


# ---- compose -----------------------------------------------------------------------------------------------------

COMPOSE = DEPLOY / "compose.yaml"
compose = (docs.get(COMPOSE) or [{}])[0]
services = compose.get("services", {})
replicas = {n: s for n, s in services.items() if str(s.get("image", "")).startswith("idguard")}
where = rel(COMPOSE)
if len(replicas) < 2:
    problem(where, f"expected at least two idguard replicas, found {len(replicas)}")
shared = {}
data_volumes = {}
for name, s in replicas.items():
    sw = f"{where}: services.{name}"
    if s.get("read_only") is not True:
        problem(sw, "read_only must be true")
    if str(s.get("user", "0")).split(":")[0] in ("0", "root", ""):
        problem(sw, "user must be a non-root uid")
    if "ALL" not in s.get("cap_drop", []):
        problem(sw, "cap_drop must hold ALL")
    check_command(sw, s.get("command", []))
    test = s.get("healthcheck", {}).get("test", [])
    if not (isinstance(test, list) and test[:3] == ["CMD", IMAGE_BIN, "health"]):
        problem(sw, f"healthcheck.test must be exec form [CMD, {IMAGE_BIN}, health, URL]: the image has no shell")
    elif not re.fullmatch(rf"http://127\.0\.0\.1:{ADMIN_PORT}/(readyz|healthz)", test[3] if len(test) > 3 else ""):
        problem(sw, f"healthcheck must probe http://127.0.0.1:{ADMIN_PORT}/readyz")
    env = s.get("environment", {})
    if isinstance(env, list):  # the list form, ["NAME=value", …]
        env = dict(e.partition("=")[::2] for e in env)
    check_env(sw, env)
    redis = str(env.get("IDGUARD_REDIS_URL", ""))
    m = re.fullmatch(r"rediss?://([^:/@]+)(:\d+)?(/\d+)?", redis)
    if not m or m.group(1) not in services:
        problem(sw, "IDGUARD_REDIS_URL must name the compose file's Redis service")
    keyfile = str(env.get("IDGUARD_MASTER_KEY_FILE", ""))
    secret_names = [x if isinstance(x, str) else x.get("source") for x in s.get("secrets", [])]
    if not any(keyfile == f"/run/secrets/{n}" for n in secret_names) or not set(secret_names) <= set(compose.get("secrets", {})):
        problem(sw, "IDGUARD_MASTER_KEY_FILE must be a compose secret mounted at /run/secrets/NAME")
    if "IDGUARD_MASTER_KEY" in env:
        problem(sw, "the master key belongs in a secret file, not the environment")
    targets = {c.get("target"): c.get("source") for c in s.get("configs", []) if isinstance(c, dict)}
    source = targets.get(env.get("IDGUARD_CONFIG"))
    if source is None or (COMPOSE.parent / compose.get("configs", {}).get(source, {}).get("file", "")).resolve() != ROUTING:
        problem(sw, f"IDGUARD_CONFIG must be {rel(ROUTING)}, mounted as a config")
    data = env.get("IDGUARD_DATA_DIR")
    vols = [v.split(":") for v in s.get("volumes", []) if isinstance(v, str)]
    mine = [v[0] for v in vols if len(v) >= 2 and v[1] == data and v[0] in compose.get("volumes", {})]
    if not mine:
        problem(sw, f"IDGUARD_DATA_DIR {data} must be a named volume (the root file system is read-only)")
    for vol in mine:
        if vol in data_volumes:
            problem(sw, f"shares the data volume {vol} with {data_volumes[vol]}: every replica needs its own")
        data_volumes[vol] = name
    for port in s.get("ports", []):
        parts = str(port).split(":")
        if parts[-1].split("/")[0] == str(ADMIN_PORT) and not (len(parts) == 3 and parts[0] in ("127.0.0.1", "[::1]")):
            problem(sw, f"publishes the admin listener ({port}) beyond the host's loopback")
    # What every replica must share: the same environment but nothing per replica in it, secrets and configs.
    for key in ("image", "environment", "secrets", "configs", "user"):
        shared.setdefault(key, json.dumps(s.get(key), sort_keys=True))
        if shared[key] != json.dumps(s.get(key), sort_keys=True):
            problem(sw, f"{key} differs from the other replicas': they must share it")
redis_services = [s for s in services.values() if str(s.get("image", "")).split("/")[-1].startswith("redis")]
if len(redis_services) != 1:
    problem(where, "expected one Redis service")
elif "--appendonly" not in redis_services[0].get("command", []):
    problem(where, "Redis must run with --appendonly yes (docs/scale.md)")


# ---- Dockerfile -------------------------------------------------------------------------------------------------

DOCKERFILE = DEPLOY / "docker" / "Dockerfile"
where = rel(DOCKERFILE)
instructions = []
pending = ""
for line in DOCKERFILE.read_text().splitlines():
    if not pending and (line.lstrip().startswith("#") or not line.strip()):
        continue
    if line.lstrip().startswith("#"):
        continue
    if line.rstrip().endswith("\\"):
        pending += line.rstrip()[:-1] + " "
        continue
    text = (pending + line).strip()
    pending = ""
    op, _, args = text.partition(" ")
    instructions.append((op.upper(), args.strip()))
stages = []
for op, args in instructions:
    if op == "FROM":
        stages.append([])
    if stages:
        stages[-1].append((op, args))
if len(stages) < 2:
    problem(where, "must be multi-stage (a build stage and a runtime stage)")
else:
    build, final = stages[0], stages[-1]
    toolchain = re.search(r'channel\s*=\s*"([^"]+)"', (ROOT / "rust-toolchain.toml").read_text()).group(1)
    base = build[0][1].split()[0]
    if not re.fullmatch(rf"(docker\.io/library/)?rust:{re.escape(toolchain)}(-[a-z]+)?", base):
        problem(where, f"the build stage's base {base} is not rust:{toolchain} (rust-toolchain.toml)")
    builds = [m.group(0).strip() for op, args in build if op == "RUN"
              for m in [re.search(r"cargo build[^&;|]*", args)] if m]
    ci_lines = {l.strip() for l in (ROOT / ".ci/run").read_text().splitlines()}
    if len(builds) != 1:
        problem(where, "the build stage must run exactly one `cargo build`")
    elif " ".join(builds[0].split()) not in ci_lines:
        problem(where, f"builds with `{builds[0]}`, a command .ci/run does not run: keep them the same")
    elif not {"--release", "--locked"} <= set(builds[0].split()):
        problem(where, "the image must be built with --release --locked")
    runtime_base = final[0][1].split()[0]
    if not SHELL_LESS_BASES.fullmatch(runtime_base):
        problem(where, f"runtime base {runtime_base} is not a shell-less image (distroless static/cc/base, scratch)")
    ops = dict()
    for op, args in final:
        ops.setdefault(op, []).append(args)
        if op == "RUN":
            problem(where, f"RUN in the runtime stage needs a shell: {args}")
        if op in ("ENTRYPOINT", "CMD") and not args.startswith("["):
            problem(where, f"{op} must be exec form (JSON): the image has no shell")
    def exec_form(op):
        """The last `op`'s JSON array, or [] when absent or in shell form (reported above)."""
        try:
            value = json.loads((ops.get(op) or ["[]"])[-1])
        except json.JSONDecodeError:
            return []
        return value if isinstance(value, list) else []

    user = (ops.get("USER") or ["0"])[-1].split(":")[0]
    if user in ("0", "root"):
        problem(where, "the runtime stage must set USER to a non-root user")
    if exec_form("ENTRYPOINT") != [IMAGE_BIN]:
        problem(where, f"ENTRYPOINT must be [\"{IMAGE_BIN}\"]")
    if not any(IMAGE_BIN in a for a in ops.get("COPY", [])):
        problem(where, f"the runtime stage does not copy the binary to {IMAGE_BIN}")
    check_command(where, exec_form("CMD"))
    health = (ops.get("HEALTHCHECK") or [""])[-1]
    m = re.search(r"CMD\s+(\[.*\])\s*$", health)
    try:
        probe_argv = json.loads(m.group(1)) if m else []
    except json.JSONDecodeError:
        probe_argv = []
    if probe_argv[:2] != [IMAGE_BIN, "health"]:
        problem(where, f"HEALTHCHECK must be exec form CMD [\"{IMAGE_BIN}\", \"health\", URL]")
    else:
        check_command(where, probe_argv[1:])
    env = dict(re.findall(r"(IDGUARD_[A-Z_]+)=(\S+)", " ".join(ops.get("ENV", []))))
    check_env(where, env)
    volumes = " ".join(ops.get("VOLUME", []))
    if not env.get("IDGUARD_DATA_DIR") or env["IDGUARD_DATA_DIR"] not in volumes:
        problem(where, "IDGUARD_DATA_DIR must be a VOLUME (the root file system may be read-only)")
    exposed = {int(p.split("/")[0]) for a in ops.get("EXPOSE", []) for p in a.split()}
    if {PUBLIC_PORT, ADMIN_PORT} - exposed:
        problem(where, f"EXPOSE must list {PUBLIC_PORT} and {ADMIN_PORT}")


# ---- systemd unit: what systemd-analyze does not know we need ----------------------------------------------------

UNIT = DEPLOY / "systemd" / "idguard.service"
where = rel(UNIT)
directives = {}
for line in UNIT.read_text().splitlines():
    line = line.strip()
    if line and not line.startswith(("#", ";", "[")) and "=" in line:
        key, _, value = line.partition("=")
        directives.setdefault(key.strip(), []).append(value.strip())
for key, want in (("DynamicUser", "yes"), ("LimitCORE", "0"), ("ProtectSystem", "strict"), ("NoNewPrivileges", "yes")):
    if directives.get(key, [None])[-1] != want:
        problem(where, f"{key}= must be {want}")
for key in ("StateDirectory", "ConfigurationDirectory"):
    if not directives.get(key):
        problem(where, f"{key}= must be set")
argv = shlex.split(directives.get("ExecStart", [""])[-1])
if not argv or argv[0] != IMAGE_BIN:
    problem(where, f"ExecStart must run {IMAGE_BIN}")
else:
    check_command(where, argv[1:])
    flags = dict(zip(argv[2::1], argv[3::1]))
    state = f"/var/lib/{directives.get('StateDirectory', ['?'])[-1]}"
    conf = f"/etc/{directives.get('ConfigurationDirectory', ['?'])[-1]}/"
    if flags.get("--data-dir") != state:
        problem(where, f"--data-dir must be the StateDirectory ({state})")
    if not flags.get("--config", "").startswith(conf):
        problem(where, f"--config must be in the ConfigurationDirectory ({conf})")
check_env(where, [v.partition("=")[0] for v in directives.get("Environment", [])])

for p in problems:
    print(p)
sys.exit(1 if problems else 0)

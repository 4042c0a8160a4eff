//! The values sent to the engine and to `check`: each edge on both sides where the engines
//! draw one, and the values whose fate depends on the host, which `check` must take.

use serde_json::{json, Value};

use crate::util::Sandbox;

/// One value, as a record would hold it.
pub struct Case {
    pub what: String,
    /// The container's name, when the name is the value.
    pub name: Option<String>,
    /// The image reference, when it is the value.
    pub image: Option<String>,
    pub config: Value,
    pub host: Value,
    /// Engines that may refuse the value for reasons of the host (the cgroup version, what
    /// exists there, the sandbox's privileges) or of one version only: `check` must take it,
    /// and leaves it to the engine.
    pub left_to: &'static [Engine],
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Engine {
    Docker,
    Podman,
}

const ANY: &[Engine] = &[Engine::Docker, Engine::Podman];
const DOCKER: &[Engine] = &[Engine::Docker];
const PODMAN: &[Engine] = &[Engine::Podman];

fn case(what: &str, config: Value, host: Value) -> Case {
    Case {
        what: what.to_string(),
        name: None,
        image: None,
        config,
        host,
        left_to: &[],
    }
}

fn h(host: Value) -> Case {
    case(&host.to_string(), json!({}), host)
}

fn c(config: Value) -> Case {
    case(&config.to_string(), config, json!({}))
}

impl Case {
    fn left_to(mut self, engines: &'static [Engine]) -> Case {
        self.left_to = engines;
        self
    }
}

/// The values: each edge on both sides where the engines draw one.
pub fn corpus(sb: &Sandbox) -> Vec<Case> {
    let data = sb.dir().join("data");
    std::fs::create_dir_all(&data).expect("data dir");
    let src = data.display().to_string();
    let volume = sb.name("vol");
    let mut cases = Vec::new();
    for name in [
        "7", "we b", "web!", "a..b", "...", "_web", "web_", "-web", "/x/y",
    ] {
        let mut named = case(&format!("name {name:?}"), json!({}), json!({}));
        named.name = Some(match name {
            "7" => name.to_string(),
            n if n.starts_with(|c: char| c.is_ascii_alphanumeric()) => sb.name(n),
            n => format!("{n}{}", sb.prefix),
        });
        cases.push(named);
    }
    let long_tag = format!("x:{}", "t".repeat(129));
    let ok_tag = format!("x:{}", "t".repeat(128));
    let digest = format!("x:1@sha256:{}", "a".repeat(64));
    for reference in [
        "Guestlist-test:1",
        "guestlist-test:",
        ":1",
        "a//b",
        "a:b:c",
        "localhost:5000/x:y",
        "x:t\u{fc}",
        &long_tag,
        &ok_tag,
        "a__b",
        "a___b",
        "a-_b",
        &"a".repeat(256),
        "docker.io/library/x:1",
        &digest,
        "[::1]:5000/x",
        "Registry.Example.com/x",
        "x/Y",
        "x..y",
        "sha256:zzz",
        &"a".repeat(64),
        "x:-t",
        "x:_t",
        "x@md5:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        "host:port/x",
    ] {
        let mut image = case(&format!("image {reference:?}"), json!({}), json!({}));
        image.image = Some(reference.to_string());
        // Docker 26 and later read an IPv6 registry; 20.10 does not.
        cases.push(match reference.starts_with('[') {
            true => image.left_to(DOCKER),
            false => image,
        });
    }
    let numbers = [
        ("Memory", vec![-1, 1000, 6291455, 6291456]),
        ("MemoryReservation", vec![-5, 1000, 6291456]),
        ("ShmSize", vec![-1, 0, 1]),
        ("CpuShares", vec![-1, 0, 2, 262144]),
        ("NanoCpus", vec![-1, 1]),
        ("CpuPeriod", vec![-1, 999, 1000, 1000000, 1000001]),
        ("CpuQuota", vec![-2, -1, 999, 1000]),
        ("PidsLimit", vec![-2, -1, 0, 100]),
        ("OomScoreAdj", vec![-1001, -1000, 1000, 1001]),
        ("MemorySwappiness", vec![-2, -1, 0, 100, 101]),
        ("CpuPercent", vec![-1, 101]),
    ];
    for (key, values) in numbers {
        for value in values {
            let mut one = h(json!({ key: value }));
            if key == "OomScoreAdj" && value == -1000 {
                // Lowering the score needs a privilege the engine's sandbox may lack.
                one = one.left_to(ANY);
            }
            if key == "Memory" && value == 1000 {
                // Podman takes it, and then the kernel refuses a limit under what runs.
                one = one.left_to(PODMAN);
            }
            cases.push(one);
        }
    }
    // cgroup v2 maps shares to weights 1 to 10000 and refuses these at start; v1 clamps them.
    cases.push(h(json!({"CpuShares": 1})).left_to(ANY));
    cases.push(h(json!({"CpuShares": 262145})).left_to(ANY));
    // Discarded with a warning where the kernel has no blkio weight (cgroup v2).
    cases.push(h(json!({"BlkioWeight": 9})).left_to(ANY));
    let pairs = [
        json!({"Memory": 67108864, "MemorySwap": -1}),
        json!({"Memory": 67108864, "MemorySwap": -2}),
        json!({"MemorySwap": 67108864}),
        json!({"Memory": 67108864, "MemorySwap": 33554432}),
        json!({"Memory": 67108864, "MemorySwap": 67108864}),
        json!({"Memory": 67108864, "MemoryReservation": 134217728}),
        json!({"Memory": 67108864, "MemoryReservation": 67108864}),
        json!({"NanoCpus": 1000000000, "CpuPeriod": 100000}),
        json!({"NanoCpus": 1000000000, "CpuQuota": 50000}),
        json!({"IOMaximumBandwidth": 1}),
        json!({"CpusetCpus": "bogus"}),
        json!({"CpusetMems": "0-"}),
        json!({"AutoRemove": true, "RestartPolicy": {"Name": "always"}}),
        json!({"AutoRemove": true, "RestartPolicy": {"Name": "no"}}),
    ];
    cases.extend(pairs.into_iter().map(h));
    for policy in [
        json!({"Name": "always", "MaximumRetryCount": 3}),
        json!({"Name": "on-failure", "MaximumRetryCount": 3}),
        json!({"Name": "on-failure", "MaximumRetryCount": -1}),
        json!({"Name": "unless-stopped", "MaximumRetryCount": 1}),
        json!({"Name": "", "MaximumRetryCount": 1}),
        json!({"Name": "Always"}),
        json!({"Name": "sometimes"}),
        json!({"Name": ""}),
    ] {
        let name_only = policy["Name"] == "" && policy.get("MaximumRetryCount").is_some();
        // Docker 26 and later refuse a count without a policy; 20.10 and Podman take it.
        let one = h(json!({ "RestartPolicy": policy }));
        cases.push(if name_only { one.left_to(DOCKER) } else { one });
    }
    for key in [
        "80",
        "80/tcp",
        "80/udp",
        "80/sctp",
        "80/TCP",
        "80/icmp",
        "0/tcp",
        "65535/tcp",
        "65536/tcp",
        "80-81/tcp",
        "-1/tcp",
        "http/tcp",
        "80/",
        "/tcp",
        " 80/tcp",
        "80/tcp/x",
    ] {
        cases.push(h(
            json!({"PortBindings": {key: [{"HostIp": "", "HostPort": ""}]}}),
        ));
    }
    for port in [
        "0",
        "65535",
        "65536",
        "-1",
        "8080-8081",
        "8081-8080",
        "http",
        " 8080",
        "1-65535",
        "08080",
        "+80",
        "80.0",
    ] {
        let binding = json!([{"HostIp": "127.0.0.1", "HostPort": port}]);
        cases.push(h(json!({"PortBindings": {"80/tcp": binding}})));
    }
    for address in [
        "",
        "0.0.0.0",
        "::",
        "::1",
        "[::1]",
        "localhost",
        "256.1.1.1",
        "127.1",
        "fe80::1%eth0",
    ] {
        let binding = json!([{"HostIp": address, "HostPort": "0"}]);
        cases.push(h(json!({"PortBindings": {"80/tcp": binding}})));
    }
    for key in [
        "80",
        "80/udp",
        "80/sctp",
        "65536/tcp",
        "80-81/tcp",
        "0/tcp",
        "http/tcp",
    ] {
        cases.push(c(json!({"ExposedPorts": {key: {}}})));
    }
    let binds = [
        format!("{src}:/data"),
        format!("{src}:/data:ro,z"),
        format!("{src}:/data:Z"),
        format!("{src}:/data:rprivate"),
        format!("{src}:/data:bogus"),
        format!("{src}:data"),
        "/data".to_string(),
        format!("{volume}:/data"),
        format!("{volume}:/data:nocopy"),
        format!("{volume}:/data:ro,nocopy"),
        "./rel:/data".to_string(),
        format!("{src}:/data:ro:extra"),
        format!("{src}:/"),
        "glv vol:/data".to_string(),
        format!("{src}:/data:ro,ro"),
        format!("{src}:/data:rw,ro"),
        ":/data".to_string(),
        format!("{src}:/data:"),
        format!("{src}:/data:nocopy"),
        format!("{src}:/data:O"),
        format!("{src}:/data:U"),
    ];
    cases.extend(binds.into_iter().map(|b| h(json!({ "Binds": [b] }))));
    // Shared propagation needs a shared mount on the host.
    cases.push(h(json!({ "Binds": [format!("{src}:/data:ro,rshared")] })).left_to(ANY));
    let mounts = [
        json!({"Type": "bind", "Source": src, "Target": "/data"}),
        json!({"Type": "bind", "Source": "rel", "Target": "/data"}),
        json!({"Type": "bind", "Source": src, "Target": "data"}),
        json!({"Type": "bind", "Target": "/data"}),
        json!({"Type": "volume", "Target": "/data"}),
        json!({"Type": "volume", "Source": volume, "Target": "/data"}),
        json!({"Type": "volume", "Source": "/abs", "Target": "/data"}),
        json!({"Type": "volume", "Source": "glv vol", "Target": "/data"}),
        json!({"Type": "tmpfs", "Target": "/data"}),
        json!({"Type": "tmpfs", "Source": "x", "Target": "/data"}),
        json!({"Type": "tmpfs", "Target": "/data", "TmpfsOptions": {"SizeBytes": -1}}),
        json!({"Type": "Bind", "Source": src, "Target": "/data"}),
        json!({"Type": "nfs", "Target": "/data"}),
        json!({"Type": "bind", "Source": src, "Target": "/data", "VolumeOptions": {}}),
        json!({"Type": "npipe", "Source": "x", "Target": "/data"}),
        json!({"Type": "", "Target": "/data"}),
        json!({"Type": "bind", "Source": src, "Target": "/"}),
        json!({"Type": "bind", "Source": src, "Target": "/data/../x"}),
    ];
    cases.extend(mounts.into_iter().map(|m| h(json!({ "Mounts": [m] }))));
    cases.push(h(json!({"Mounts": [
        {"Type": "volume", "Source": volume, "Target": "/data"},
        {"Type": "tmpfs", "Target": "/data/"}]})));
    cases.push(h(
        json!({"Binds": [format!("{volume}:/data")], "Mounts": [{"Type": "tmpfs", "Target": "/data"}]}),
    ));
    for tmpfs in ["/run", "run", "/", "/run:size=1m", ""] {
        cases.push(h(json!({"Tmpfs": {tmpfs: ""}})));
    }
    let device = |on_host: &str, inside: &str, permissions: &str| {
        json!({"Devices": [{"PathOnHost": on_host, "PathInContainer": inside,
                            "CgroupPermissions": permissions}]})
    };
    for (on_host, inside, permissions) in [
        ("/dev/null", "/dev/xnull", "rwm"),
        ("/dev/null", "/dev/xnull", "rwx"),
        ("/dev/null", "/dev/xnull", ""),
        ("/dev/null", "xnull", "r"),
        ("/dev/null", "", "rw"),
        ("/dev/null", "/dev/xnull", "RWM"),
        ("/dev/null", "/dev/xnull", "mrw"),
    ] {
        cases.push(h(device(on_host, inside, permissions)));
    }
    // Docker 20.10 refuses a relative host path at start, later ones take it.
    cases.push(h(device("dev/null", "/dev/xnull", "r")).left_to(DOCKER));
    for (name, soft, hard, left) in [
        ("nofile", 2048, 1024, &[][..]),
        ("bogus", 1, 1, &[]),
        ("NOFILE", 20000, 20000, &[]),
        ("RLIMIT_CORE", 0, 0, &[]),
        ("", 0, 0, &[]),
        // What this sandbox (no CAP_SYS_RESOURCE) lets Podman grant.
        ("core", -1, -1, PODMAN),
        ("rtprio", 0, 0, PODMAN),
    ] {
        cases.push(
            h(json!({"Ulimits": [{"Name": name, "Soft": soft, "Hard": hard}]})).left_to(left),
        );
    }
    for entry in [
        "host:1.2.3.4",
        "host:::1",
        "host:[::1]",
        "host=1.2.3.4",
        "host:notanip",
        "host",
        ":1.2.3.4",
        "host:host-gateway",
        "ho st:1.2.3.4",
        "host:1.2.3.4:5",
        "host:256.0.0.1",
    ] {
        cases.push(h(json!({ "ExtraHosts": [entry] })));
    }
    for server in ["1.1.1.1", "::1"] {
        cases.push(h(json!({ "Dns": [server] })));
    }
    // Docker 20.10 takes any name server; later ones refuse a bad one at start.
    for server in ["notanip", "1.1.1.1:53"] {
        cases.push(h(json!({ "Dns": [server] })).left_to(DOCKER));
    }
    let modes = [
        (
            "NetworkMode",
            &[
                "bridge",
                "host",
                "none",
                "default",
                "container:",
                "container",
            ][..],
        ),
        (
            "IpcMode",
            &[
                "",
                "private",
                "shareable",
                "host",
                "none",
                "container:",
                "bogus",
                "Private",
            ],
        ),
        ("PidMode", &["", "host", "container:"]),
        ("UTSMode", &["", "host"]),
        // Docker refuses other values of these two, and Podman ignores them; a create request
        // (the API's enums) cannot carry them at all, so `check` refuses them for any engine.
        ("CgroupnsMode", &["", "host", "private"]),
        ("Isolation", &["", "default", "process", "hyperv"]),
    ];
    for (key, values) in modes {
        cases.extend(values.iter().map(|v| h(json!({ key: v }))));
    }
    // Docker 20.10 takes these; 26 and later refuse them.
    for (key, value) in [
        ("PidMode", "bogus"),
        ("PidMode", "private"),
        ("UTSMode", "bogus"),
        ("UTSMode", "private"),
    ] {
        cases.push(h(json!({ key: value })).left_to(DOCKER));
    }
    for env in ["", "=foo", "A", "A=", " A=1", "A B=1", "A=1=2", "1A=x", "="] {
        cases.push(c(json!({ "Env": [env] })));
    }
    for dir in ["/tmp", "tmp", "./tmp", "/tmp/../x", "~"] {
        cases.push(c(json!({ "WorkingDir": dir })));
    }
    for health in [
        json!({"Test": ["CMD", "true"], "Interval": 999999}),
        json!({"Test": ["CMD", "true"], "Interval": 1000000}),
        json!({"Test": ["CMD", "true"], "Interval": -1}),
        json!({"Test": ["CMD", "true"], "Timeout": 999999}),
        json!({"Test": ["CMD", "true"], "Retries": -1}),
        json!({"Test": ["CMD", "true"], "StartPeriod": 5}),
        json!({"Test": ["NONE"]}),
    ] {
        cases.push(c(json!({ "Healthcheck": health })));
    }
    for cap in ["NET_ADMIN", "CAP_NET_ADMIN", "net_admin", "BOGUS", ""] {
        cases.push(h(json!({ "CapAdd": [cap] })));
    }
    // Docker 20.10 fails to start with every capability added; the rest take it.
    cases.push(h(json!({ "CapAdd": ["ALL"] })).left_to(DOCKER));
    cases.push(h(json!({ "CapDrop": ["BOGUS"] })));
    cases.push(c(json!({ "Hostname": "h".repeat(64) })));
    cases.push(c(json!({ "Hostname": "h".repeat(65) })));
    cases.push(case(
        "hostname with a shared network",
        json!({"Hostname": "x"}),
        json!({"NetworkMode": "container:x"}),
    ));
    cases.push(case(
        "hostname with the host's UTS",
        json!({"Hostname": "x"}),
        json!({"UTSMode": "host"}),
    ));
    cases.push(h(
        json!({"PublishAllPorts": true, "NetworkMode": "container:x"}),
    ));
    for option in [
        "no-new-privileges",
        "no-new-privileges:true",
        "no-new-privileges=maybe",
        "bogus",
        "bogus=1",
        "label=disable",
        "apparmor=unconfined",
        "seccomp=unconfined",
        "label:disable",
    ] {
        cases.push(h(json!({ "SecurityOpt": [option] })));
    }
    for log in [
        json!({"Type": "json-file"}),
        json!({"Type": "none"}),
        json!({"Type": "json-file", "Config": {"max-size": "1m"}}),
        json!({"Type": "json-file", "Config": {"bogus": "1"}}),
        json!({"Type": "local"}),
        json!({"Type": "k8s-file"}),
    ] {
        // A driver name may be a plugin's: Docker's refusal is left to it.
        let docker_only_knows = log["Type"] == "k8s-file";
        let one = h(json!({ "LogConfig": log }));
        cases.push(if docker_only_knows {
            one.left_to(DOCKER)
        } else {
            one
        });
    }
    for signal in [
        "SIGFOO",
        "9",
        "SIGRTMIN+3",
        "0",
        "64",
        "65",
        "-1",
        "sigterm",
        "TERM",
        "RTMIN+16",
        "SIGRTMAX-1",
        "SIGUNUSED",
        "SIGPOLL",
        "SIGEMT",
        "SIGTERM ",
    ] {
        cases.push(c(json!({ "StopSignal": signal })));
    }
    for stop in [-1, -2] {
        cases.push(c(json!({ "StopTimeout": stop })));
    }
    cases.push(c(json!({"Labels": {"": "x"}})));
    cases.push(h(json!({"VolumesFrom": [""]})));
    cases
}

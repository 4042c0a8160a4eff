//! Ports, host addresses and name servers: the forms dockerd's `nat` parsing and
//! `validatePortBindings` take, and the stricter ones of Podman's port and address parsing.

use std::net::IpAddr;

use serde_json::Value;

use super::{at, strings, with, By, Findings, EVERY_ENGINE, PODMAN};
use crate::record::schema::Step;
use crate::record::spec::ContainerSpec;

pub(super) fn check(spec: &ContainerSpec, out: &mut Findings) {
    if let Some(Value::Object(bindings)) = spec.host_config.get("PortBindings") {
        for (key, list) in bindings {
            let place = at("host_config", &["PortBindings", key]);
            let refused = binding_key_refused(key);
            out.refuse(
                refused,
                place.clone(),
                &format!("{key:?}"),
                "this container port",
                "write one port from 1 to 65535 with its protocol, such as \"80/tcp\" or \
                 \"53/udp\" (a range goes in HostPort)",
            );
            let each = list.as_array().into_iter().flatten().enumerate();
            for (i, binding) in each {
                let place = with(place.clone(), Step::Index(i));
                host_binding(binding, &place, out);
            }
        }
    }
    if let Some(Value::Object(exposed)) = spec.config.get("ExposedPorts") {
        for key in exposed.keys() {
            if !exposed_port_taken(key) {
                out.refuse(
                    PODMAN,
                    at("config", &["ExposedPorts", key]),
                    &format!("{key:?}"),
                    "this exposed port",
                    "write a port from 1 to 65535 (or a range) with tcp or udp, such as \"80/tcp\"",
                );
            }
        }
    }
    for (i, entry) in strings(&spec.host_config, "ExtraHosts") {
        let place = with(at("host_config", &["ExtraHosts"]), Step::Index(i));
        let (refused, why) = match entry.split_once(':') {
            None | Some(("", _)) => (EVERY_ENGINE, "an extra host without a name and address"),
            Some((_, address)) => match address == "host-gateway" || is_ip(address) {
                true => continue,
                false => (
                    super::DOCKER,
                    "an extra host whose address is no IP address",
                ),
            },
        };
        out.refuse(
            refused,
            place,
            &format!("{entry:?}"),
            why,
            "write NAME:ADDRESS, such as \"db:10.0.0.5\", \"db:fd00::5\" or \"host.docker.internal:host-gateway\"",
        );
    }
    for (i, server) in strings(&spec.host_config, "Dns") {
        if !is_ip(server) {
            out.refuse(
                PODMAN,
                with(at("host_config", &["Dns"]), Step::Index(i)),
                &format!("{server:?}"),
                "a name server that is no IP address",
                "write an IPv4 or IPv6 address, without a port",
            );
        }
    }
}

fn host_binding(binding: &Value, place: &[Step], out: &mut Findings) {
    let host_port = binding
        .get("HostPort")
        .and_then(Value::as_str)
        .unwrap_or("");
    let refused = host_port_refused(host_port);
    out.refuse(
        refused,
        with(place.to_vec(), Step::Key("HostPort".into())),
        &format!("{host_port:?}"),
        "this host port",
        "write a port from 0 to 65535, a rising range such as \"8080-8081\" (not on Podman), or \
         \"\" for any free port",
    );
    let host_ip = binding.get("HostIp").and_then(Value::as_str).unwrap_or("");
    if !host_ip.is_empty() && !is_ip(host_ip) {
        out.refuse(
            PODMAN,
            with(place.to_vec(), Step::Key("HostIp".into())),
            &format!("{host_ip:?}"),
            "a host address that is no IP address",
            "write an address such as \"127.0.0.1\" or \"::1\" (no brackets, no zone), or \"\" \
             for every address",
        );
    }
}

/// An IPv4 or IPv6 address as Go's `net.ParseIP` reads it: no brackets, zone or short forms.
fn is_ip(text: &str) -> bool {
    text.parse::<IpAddr>().is_ok()
}

/// A port as Go's `strconv.ParseUint(s, 10, 16)` reads it: digits only, at most 65535.
fn port_number(text: &str) -> Option<u16> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    match text.trim_start_matches('0') {
        "" => Some(0),
        significant => significant.parse().ok(),
    }
}

/// Which engines refuse `key` as a `PortBindings` key (`80/tcp`): Docker reads the port before
/// the first `/` when there is one; Podman also wants it above 0, and a known protocol.
pub(super) fn binding_key_refused(key: &str) -> By {
    let mut parts = key.split('/');
    let port = parts.next().unwrap_or("");
    let protocol = parts.next().unwrap_or("");
    let docker = !port.is_empty() && port_number(port).is_none();
    let podman = port_number(port).is_none_or(|p| p == 0)
        || !(protocol.is_empty()
            || ["tcp", "udp", "sctp"].contains(&protocol.to_ascii_lowercase().as_str()));
    By { docker, podman }
}

/// Which engines refuse `port` as a `HostPort`: Docker takes a port or a rising range; Podman a
/// number only (it sends the value through `strconv.Atoi`).
pub(super) fn host_port_refused(port: &str) -> By {
    if port.is_empty() {
        return By {
            docker: false,
            podman: false,
        };
    }
    let docker = match port.split_once('-') {
        None => port_number(port).is_none(),
        Some((low, high)) => match (port_number(low), port_number(high)) {
            (Some(low), Some(high)) => low > high,
            _ => true,
        },
    };
    let podman = port.parse::<i64>().is_err();
    By { docker, podman }
}

/// Podman's reading of an exposed port: 1 to 65535 or a range, tcp or udp.
fn exposed_port_taken(key: &str) -> bool {
    let (port, protocol) = key.split_once('/').unwrap_or((key, ""));
    let number = |p: &str| port_number(p).is_some_and(|n| n > 0);
    let ports = match port.split_once('-') {
        Some((low, high)) => number(low) && number(high),
        None => number(port),
    };
    ports && ["", "tcp", "udp"].contains(&protocol.to_ascii_lowercase().as_str())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const NONE: By = By {
        docker: false,
        podman: false,
    };

    #[test]
    fn port_forms_are_read_as_each_engine_reads_them() {
        assert_eq!(binding_key_refused("80"), NONE);
        assert_eq!(binding_key_refused("80/tcp"), NONE);
        assert_eq!(binding_key_refused("80/TCP"), NONE);
        assert_eq!(binding_key_refused("80/tcp/x"), NONE);
        assert_eq!(binding_key_refused("0/tcp"), PODMAN);
        assert_eq!(binding_key_refused("/tcp"), PODMAN);
        assert_eq!(binding_key_refused("80/icmp"), PODMAN);
        for refused in [
            "65536/tcp",
            "80-81/tcp",
            " 80/tcp",
            "-1/tcp",
            "http/tcp",
            "+80/tcp",
        ] {
            assert_eq!(binding_key_refused(refused), EVERY_ENGINE, "{refused}");
        }
        assert_eq!(host_port_refused("08080"), NONE);
        assert_eq!(host_port_refused("8080-8081"), PODMAN);
        assert_eq!(host_port_refused("65536"), super::super::DOCKER);
        assert_eq!(host_port_refused("-1"), super::super::DOCKER);
        assert_eq!(host_port_refused("+80"), super::super::DOCKER);
        for refused in ["8081-8080", "http", " 8080", "8080 ", "80.0"] {
            assert_eq!(host_port_refused(refused), EVERY_ENGINE, "{refused}");
        }
        assert!(exposed_port_taken("80-81/tcp"));
        assert!(!exposed_port_taken("80/sctp"));
        assert!(!exposed_port_taken("0/tcp"));
    }

    proptest! {
        #[test]
        fn every_port_and_rising_range_is_taken(low in 0u16.., high in 0u16.., zeros in 0usize..3) {
            let padded = format!("{}{low}", "0".repeat(zeros));
            prop_assert!(!host_port_refused(&padded).docker);
            prop_assert_eq!(host_port_refused(&low.to_string()), NONE);
            let (low, high) = (low.min(high), low.max(high));
            let range = format!("{low}-{high}");
            prop_assert!(!host_port_refused(&range).docker);
            if high > 0 {
                for protocol in ["", "/tcp", "/udp", "/sctp", "/UDP"] {
                    prop_assert_eq!(binding_key_refused(&format!("{high}{protocol}")), NONE);
                }
            }
        }

        #[test]
        fn a_port_over_65535_is_refused(port in 65536u64..10_000_000_000) {
            prop_assert!(host_port_refused(&port.to_string()).docker);
            prop_assert_eq!(binding_key_refused(&format!("{port}/tcp")), EVERY_ENGINE);
        }

        #[test]
        fn anything_but_digits_and_a_dash_is_refused_by_every_engine(port in "[0-9]{0,3}[^0-9+-][0-9]{0,3}") {
            prop_assert_eq!(host_port_refused(&port), EVERY_ENGINE);
        }
    }
}

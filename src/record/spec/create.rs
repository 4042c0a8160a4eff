//! The create request for a record. Pure: no IO.

use anyhow::Result;
use serde_json::Value;

use super::{network_attachments, ContainerSpec};

/// The create request body for `spec`, using `image` (a reference or an id) as the image. Only
/// the primary network goes into the request: API 1.41 accepts one network at create, and
/// connecting the others before start works on every version.
pub fn create_body(spec: &ContainerSpec, image: &str) -> Result<Value> {
    let mut body = spec.config.clone();
    body.insert("Image".into(), Value::String(image.to_string()));
    let mut host = spec.host_config.clone();
    if !spec.anonymous_volumes.is_empty() {
        let mut mounts = host
            .get("Mounts")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for volume in &spec.anonymous_volumes {
            mounts.push(serde_json::json!({
                "Type": "volume",
                "Source": volume.name,
                "Target": volume.destination,
                "ReadOnly": volume.read_only,
            }));
        }
        host.insert("Mounts".into(), Value::Array(mounts));
    }
    body.insert("HostConfig".into(), Value::Object(host));
    if let (Some(primary), _) = network_attachments(spec) {
        let endpoint = spec.networks.get(&primary).cloned().unwrap_or_default();
        body.insert(
            "NetworkingConfig".into(),
            serde_json::json!({ "EndpointsConfig": { primary: endpoint } }),
        );
    }
    Ok(Value::Object(body))
}

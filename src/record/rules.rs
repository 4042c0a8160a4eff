//! Scope selectors (`label=KEY[=VALUE]`) and allow rules (`name=GLOB`, `image=GLOB`,
//! `label=KEY[=VALUE]`): parsing, display (the form stored in the state file) and matching.
//! Pure: no IO.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

use anyhow::{bail, Context, Result};
use globset::{Glob, GlobMatcher};
use serde::{Deserialize, Serialize};

/// `label=KEY` or `label=KEY=VALUE`, the Docker filter syntax.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct LabelSelector {
    pub key: String,
    pub value: Option<String>,
}

impl LabelSelector {
    pub fn matches(&self, labels: &HashMap<String, String>) -> bool {
        match (&self.value, labels.get(&self.key)) {
            (None, found) => found.is_some(),
            (Some(want), Some(have)) => want == have,
            (Some(_), None) => false,
        }
    }

    /// The value of a `label` filter in the engine's list and events APIs.
    pub fn filter_value(&self) -> String {
        match &self.value {
            Some(v) => format!("{}={v}", self.key),
            None => self.key.clone(),
        }
    }
}

fn parse_label(text: &str) -> Result<LabelSelector> {
    let (key, value) = match text.split_once('=') {
        Some((k, v)) => (k, Some(v.to_string())),
        None => (text, None),
    };
    if key.is_empty() {
        bail!("empty label key in `label={text}`");
    }
    Ok(LabelSelector {
        key: key.to_string(),
        value,
    })
}

impl FromStr for LabelSelector {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.split_once('=') {
            Some(("label", rest)) => parse_label(rest),
            _ => bail!("`{s}` is not a scope selector: expected label=KEY or label=KEY=VALUE"),
        }
    }
}

impl fmt::Display for LabelSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "label={}", self.filter_value())
    }
}

impl TryFrom<String> for LabelSelector {
    type Error = anyhow::Error;
    fn try_from(s: String) -> Result<Self> {
        s.parse()
    }
}

impl From<LabelSelector> for String {
    fn from(s: LabelSelector) -> String {
        s.to_string()
    }
}

/// What guestlist manages: containers carrying all these labels. Empty means the whole host.
/// Stored in the state file as the list of selectors.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Scope(Vec<LabelSelector>);

impl Scope {
    pub fn new(selectors: Vec<LabelSelector>) -> Scope {
        Scope(selectors)
    }

    /// Whether this is the whole host.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn selectors(&self) -> impl Iterator<Item = &LabelSelector> {
        self.0.iter()
    }

    /// Whether a container with `labels` is inside: it carries every selector's label.
    pub fn contains(&self, labels: &HashMap<String, String>) -> bool {
        self.0.iter().all(|s| s.matches(labels))
    }
}

/// `the whole host`, or the selectors as the command line takes them: `label=a label=b=2`.
impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("the whole host");
        }
        let words: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        f.write_str(&words.join(" "))
    }
}

/// Another orchestrator that owns a container, known by the labels it puts on every container
/// it runs. Its containers are its own: guestlist never records, starts, removes or replaces
/// them (a swarm task started again after a rolling update runs outside swarm's control, and
/// swarm recreates what guestlist removes, for ever). But any client that can create a
/// container can write those labels too, so a label is only a claim: `Claims` says where it
/// is believed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Orchestrator {
    Swarm,
    Kubernetes,
    Nomad,
}

/// The label swarm puts on each of its tasks' containers.
pub const SWARM_TASK: &str = "com.docker.swarm.task.id";

impl Orchestrator {
    /// The orchestrator whose label is among `keys`, if any (the first found).
    pub fn owning<'a>(keys: impl IntoIterator<Item = &'a str>) -> Option<Orchestrator> {
        keys.into_iter().find_map(Orchestrator::labelling)
    }

    /// The orchestrator that puts the label `key` on its containers.
    fn labelling(key: &str) -> Option<Orchestrator> {
        match key {
            SWARM_TASK => Some(Orchestrator::Swarm),
            // cri-dockerd (and dockershim before it) label every container of a pod.
            "io.kubernetes.pod.name" | "io.kubernetes.pod.uid" => Some(Orchestrator::Kubernetes),
            "com.hashicorp.nomad.alloc_id" => Some(Orchestrator::Nomad),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Orchestrator::Swarm => "swarm",
            Orchestrator::Kubernetes => "Kubernetes",
            Orchestrator::Nomad => "Nomad",
        }
    }

    /// Its word in the state file and on the command line.
    pub fn word(self) -> &'static str {
        match self {
            Orchestrator::Swarm => "swarm",
            Orchestrator::Kubernetes => "kubernetes",
            Orchestrator::Nomad => "nomad",
        }
    }
}

/// Kubernetes or Nomad, as a list names them (swarm is known from the engine, never listed).
impl FromStr for Orchestrator {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "kubernetes" => Ok(Orchestrator::Kubernetes),
            "nomad" => Ok(Orchestrator::Nomad),
            "swarm" => bail!(
                "swarm is not named in a list: its containers are its own wherever the engine \
                 reports an active swarm"
            ),
            _ => bail!("`{s}` is not an orchestrator guestlist knows: kubernetes or nomad"),
        }
    }
}

impl Serialize for Orchestrator {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.word())
    }
}

impl<'de> Deserialize<'de> for Orchestrator {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let word = String::deserialize(deserializer)?;
        word.parse().map_err(serde::de::Error::custom)
    }
}

/// Which orchestrators' claims are believed on one host: swarm's where the engine reports an
/// active swarm (swarm never creates a container through the API, so a create that carries its
/// labels is forged); Kubernetes' and Nomad's where the list says they run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Claims {
    pub swarm: bool,
    pub kubernetes: bool,
    pub nomad: bool,
}

impl Claims {
    /// The orchestrator a container with the label `keys` belongs to: the one orchestrator its
    /// labels claim it for, when that claim is believed here. A container claimed for two is
    /// nobody's: no orchestrator labels its containers with another's labels.
    pub fn owner<'a>(&self, keys: impl IntoIterator<Item = &'a str>) -> Option<Orchestrator> {
        let claimed: std::collections::BTreeSet<Orchestrator> = keys
            .into_iter()
            .filter_map(Orchestrator::labelling)
            .collect();
        let mut claimed = claimed.into_iter();
        let one = claimed.next()?;
        if claimed.next().is_some() {
            return None;
        }
        self.believes(one).then_some(one)
    }

    pub fn believes(&self, orchestrator: Orchestrator) -> bool {
        match orchestrator {
            Orchestrator::Swarm => self.swarm,
            Orchestrator::Kubernetes => self.kubernetes,
            Orchestrator::Nomad => self.nomad,
        }
    }

    /// Whether a label among `keys` claims the container for swarm (the engine is then asked).
    pub fn claims_swarm<'a>(keys: impl IntoIterator<Item = &'a str>) -> bool {
        keys.into_iter().any(|k| k == SWARM_TASK)
    }
}

/// A rule that tolerates extra containers: they are neither removed nor restored.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum AllowRule {
    Name(Pattern),
    Image(Pattern),
    Label(LabelSelector),
}

/// A glob together with its source text, which is what gets displayed and stored.
#[derive(Debug, Clone)]
pub struct Pattern {
    text: String,
    matcher: GlobMatcher,
}

impl Pattern {
    fn new(text: &str) -> Result<Self> {
        let glob = Glob::new(text).with_context(|| format!("invalid glob `{text}`"))?;
        Ok(Pattern {
            text: text.to_string(),
            matcher: glob.compile_matcher(),
        })
    }

    fn matches(&self, candidate: &str) -> bool {
        self.matcher.is_match(candidate)
    }
}

impl PartialEq for AllowRule {
    fn eq(&self, other: &Self) -> bool {
        self.to_string() == other.to_string()
    }
}

impl AllowRule {
    /// Whether an extra container with this name, image reference and labels is tolerated.
    pub fn matches(&self, name: &str, image: &str, labels: &HashMap<String, String>) -> bool {
        match self {
            AllowRule::Name(p) => p.matches(name),
            AllowRule::Image(p) => p.matches(image),
            AllowRule::Label(l) => l.matches(labels),
        }
    }
}

impl FromStr for AllowRule {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.split_once('=') {
            Some(("name", glob)) => Ok(AllowRule::Name(Pattern::new(glob)?)),
            Some(("image", glob)) => Ok(AllowRule::Image(Pattern::new(glob)?)),
            Some(("label", rest)) => Ok(AllowRule::Label(parse_label(rest)?)),
            _ => bail!(
                "`{s}` is not an allow rule: expected name=GLOB, image=GLOB or label=KEY[=VALUE]"
            ),
        }
    }
}

impl fmt::Display for AllowRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AllowRule::Name(p) => write!(f, "name={}", p.text),
            AllowRule::Image(p) => write!(f, "image={}", p.text),
            AllowRule::Label(l) => write!(f, "{l}"),
        }
    }
}

impl TryFrom<String> for AllowRule {
    type Error = anyhow::Error;
    fn try_from(s: String) -> Result<Self> {
        s.parse()
    }
}

impl From<AllowRule> for String {
    fn from(r: AllowRule) -> String {
        r.to_string()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn selectors_parse_match_and_display_round_trip() {
        let key: LabelSelector = "label=team".parse().unwrap();
        let pair: LabelSelector = "label=team=web=x".parse().unwrap();
        assert_eq!(pair.value.as_deref(), Some("web=x"));
        assert!(key.matches(&labels(&[("team", "")])));
        assert!(!key.matches(&labels(&[("other", "1")])));
        assert!(pair.matches(&labels(&[("team", "web=x")])));
        assert!(!pair.matches(&labels(&[("team", "web")])));
        assert_eq!(pair.to_string(), "label=team=web=x");
        assert_eq!(key.filter_value(), "team");
    }

    #[test]
    fn bad_selectors_are_rejected_with_the_expected_form() {
        let err = "name=web".parse::<LabelSelector>().unwrap_err().to_string();
        assert!(err.contains("label=KEY"), "{err}");
        assert!("label=".parse::<LabelSelector>().is_err());
        assert!("label==v".parse::<LabelSelector>().is_err());
    }

    #[test]
    fn empty_scope_is_the_whole_host_and_selectors_are_anded() {
        let scope = Scope::new(vec![
            "label=a".parse().unwrap(),
            "label=b=2".parse().unwrap(),
        ]);
        assert!(Scope::default().contains(&labels(&[])));
        assert!(scope.contains(&labels(&[("a", "1"), ("b", "2")])));
        assert!(!scope.contains(&labels(&[("a", "1")])));
        assert_eq!(scope.to_string(), "label=a label=b=2");
        assert_eq!(Scope::default().to_string(), "the whole host");
    }

    #[test]
    fn allow_rules_match_names_images_and_labels() {
        let none = labels(&[]);
        let name: AllowRule = "name=ci-*".parse().unwrap();
        assert!(name.matches("ci-runner-1", "x", &none));
        assert!(!name.matches("web", "x", &none));
        let image: AllowRule = "image=registry.local/tools/*".parse().unwrap();
        assert!(image.matches("x", "registry.local/tools/debug:1", &none));
        let label: AllowRule = "label=guestlist.tolerate".parse().unwrap();
        assert!(label.matches("x", "y", &labels(&[("guestlist.tolerate", "yes")])));
        assert_eq!(image.to_string(), "image=registry.local/tools/*");
    }

    #[test]
    fn bad_allow_rules_name_the_accepted_forms() {
        let err = "tag=x".parse::<AllowRule>().unwrap_err().to_string();
        assert!(err.contains("name=GLOB"), "{err}");
        assert!("name=[".parse::<AllowRule>().is_err());
    }

    #[test]
    fn rules_round_trip_through_json() {
        let rule: AllowRule = "name=ci-*".parse().unwrap();
        let json = serde_json::to_string(&rule).unwrap();
        assert_eq!(json, "\"name=ci-*\"");
        assert_eq!(serde_json::from_str::<AllowRule>(&json).unwrap(), rule);
    }

    #[test]
    fn a_claim_is_believed_only_where_its_orchestrator_runs() {
        let k8s = ["io.kubernetes.pod.name", "io.kubernetes.container.name"];
        let none = Claims::default();
        assert_eq!(none.owner(k8s), None);
        let here = Claims {
            kubernetes: true,
            ..Claims::default()
        };
        assert_eq!(here.owner(k8s), Some(Orchestrator::Kubernetes));
        assert_eq!(here.owner(["com.hashicorp.nomad.alloc_id"]), None);
        // Claimed for two, believed for neither.
        let all = Claims {
            swarm: true,
            kubernetes: true,
            nomad: true,
        };
        assert_eq!(all.owner(["io.kubernetes.pod.name", SWARM_TASK]), None);
        assert_eq!(all.owner([SWARM_TASK]), Some(Orchestrator::Swarm));
        assert_eq!(all.owner(["team"]), None);
    }

    #[test]
    fn a_list_names_kubernetes_and_nomad_never_swarm() {
        let read = |s: &str| serde_json::from_str::<Orchestrator>(s);
        assert_eq!(read("\"kubernetes\"").unwrap(), Orchestrator::Kubernetes);
        assert_eq!(read("\"nomad\"").unwrap(), Orchestrator::Nomad);
        assert!(read("\"swarm\"")
            .unwrap_err()
            .to_string()
            .contains("active swarm"));
        assert!(read("\"Kubernetes\"").is_err());
        assert_eq!(
            serde_json::to_string(&Orchestrator::Nomad).unwrap(),
            "\"nomad\""
        );
    }

    #[test]
    fn other_orchestrators_are_known_by_their_labels() {
        let owner = |keys: &[&str]| Orchestrator::owning(keys.iter().copied());
        assert_eq!(
            owner(&["com.docker.swarm.service.name", "com.docker.swarm.task.id"]),
            Some(Orchestrator::Swarm)
        );
        assert_eq!(
            owner(&["io.kubernetes.pod.name", "io.kubernetes.container.name"]),
            Some(Orchestrator::Kubernetes)
        );
        assert_eq!(
            owner(&["com.hashicorp.nomad.alloc_id"]),
            Some(Orchestrator::Nomad)
        );
        // A compose project is not another orchestrator: it runs once and leaves.
        assert_eq!(owner(&["com.docker.compose.project", "team"]), None);
    }
}

//! The service users table (`base/users.toml`): fixed uid/gid per service, which deploy tools
//! rely on for host-side file ownership. Templates see it as `users`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct UserEntry {
    uid: u32,
    gid: u32,
    group: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct User {
    pub uid: u32,
    pub gid: u32,
    pub group: String,
}

/// name → user, sorted by name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Users(BTreeMap<String, User>);

impl Users {
    /// Parses the table; a missing `group` is the user's own name.
    pub fn parse(text: &str) -> Result<Users, String> {
        let entries: BTreeMap<String, UserEntry> =
            toml::from_str(text).map_err(|e| e.to_string())?;
        Ok(Users(
            entries
                .into_iter()
                .map(|(name, e)| {
                    let group = e.group.unwrap_or_else(|| name.clone());
                    (
                        name,
                        User {
                            uid: e.uid,
                            gid: e.gid,
                            group,
                        },
                    )
                })
                .collect(),
        ))
    }

    pub fn get(&self, name: &str) -> Option<&User> {
        self.0.get(name)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_defaults_to_the_name() {
        let users = Users::parse("[kolla]\nuid = 42400\ngid = 42400\n[hacluster]\nuid = 42486\ngid = 42486\ngroup = \"haclient\"\n").unwrap();
        assert_eq!(users.get("kolla").unwrap().group, "kolla");
        assert_eq!(users.get("hacluster").unwrap().group, "haclient");
    }

    #[test]
    fn unknown_field_is_an_error() {
        assert!(
            Users::parse("[kolla]\nuid = 1\ngid = 1\nshell = \"x\"\n")
                .unwrap_err()
                .contains("shell")
        );
    }
}

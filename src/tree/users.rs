//! The service users table (`base/users.toml`): fixed uid/gid per service, which deploy tools
//! rely on for host-side file ownership. Templates see it as `users`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

crate::common::error::message_error!(
    /// A users.toml that does not parse or assigns an ID twice.
    UsersError
);

/// A user as written in a table or a config file; a missing `group` is the user's name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserEntry {
    pub uid: u32,
    pub gid: u32,
    pub group: Option<String>,
}

/// Users kolla's own table (`kolla/common/users.py`) still holds but this project's
/// `base/users.toml` dropped or has not taken yet. kolla's `base` creates every user of its table,
/// so a kolla-layout tree gets them too, or its `base` Dockerfile would differ from kolla's.
/// The ids are the interoperability contract described in `base/users.toml`.
pub const KOLLA_EXTRA_USERS: &str = "
almanach = { uid = 42475, gid = 42475 }
congress = { uid = 42410, gid = 42410 }
dragonflow = { uid = 42464, gid = 42464 }
elasticsearch = { uid = 42412, gid = 42412 }
hsmusers = { uid = 42493, gid = 42493 }
kafka = { uid = 42423, gid = 42423 }
kerbside = { uid = 42495, gid = 42495 }
kibana = { uid = 42426, gid = 42426 }
logstash = { uid = 42478, gid = 42478 }
monasca = { uid = 42431, gid = 42431 }
mongodb = { uid = 42432, gid = 42432 }
murano = { uid = 42433, gid = 42433 }
qdrouterd = { uid = 42465, gid = 42465 }
rally = { uid = 42440, gid = 42440 }
senlin = { uid = 42443, gid = 42443 }
sensu = { uid = 42467, gid = 42467 }
skydive = { uid = 42468, gid = 42468 }
tempest = { uid = 42480, gid = 42480 }
valkey = { uid = 42494, gid = 42494 }
vmtp = { uid = 42450, gid = 42450 }
zookeeper = { uid = 42453, gid = 42453 }
";

/// The users table templates see: the tree's `base/users.toml`, else the built-in table (plus,
/// for a kolla-layout tree, the users kolla's table still has, less the users its release does
/// not create, `absent`), then the config file's users.
pub fn load_for_tree(
    tree: &crate::tree::Tree,
    builtin: &str,
    configured: &BTreeMap<String, UserEntry>,
    absent: &[String],
) -> crate::common::error::Result<Users> {
    let mut users = match tree.read_data(&["base/users.toml"])? {
        Some((path, text)) => {
            Users::parse(&text).map_err(|message| crate::common::error::Error::Config {
                path,
                message: message.to_string(),
            })?
        }
        None => {
            let mut users = Users::parse(builtin).expect("the built-in users table parses");
            if tree.layout == crate::tree::Layout::Kolla {
                let mut extra = toml::from_str::<BTreeMap<String, UserEntry>>(KOLLA_EXTRA_USERS)
                    .expect("the kolla users supplement parses");
                extra.retain(|name, _| !absent.contains(name));
                users.extend(extra);
            }
            users
        }
    };
    users.extend(configured.clone());
    Ok(users)
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
    pub fn parse(text: &str) -> Result<Users, UsersError> {
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

    /// Adds or replaces users (kolla's `[<name>-user]` config sections, or a supplement table).
    pub fn extend(&mut self, entries: impl IntoIterator<Item = (String, UserEntry)>) {
        for (name, e) in entries {
            let group = e.group.unwrap_or_else(|| name.clone());
            self.0.insert(
                name,
                User {
                    uid: e.uid,
                    gid: e.gid,
                    group,
                },
            );
        }
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

    #[test]
    fn a_kolla_tree_of_kolla_22_has_no_kerbside_user() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("base")).unwrap();
        std::fs::write(dir.path().join("base/Dockerfile.j2"), "FROM x\n").unwrap();
        let tree = crate::tree::Tree::load(dir.path(), &[]).unwrap();
        let builtin = "[kolla]\nuid = 42400\ngid = 42400\n";
        let none = BTreeMap::new();
        let kolla_22 = &crate::compat::release("22.2.0").users_absent;
        let current = load_for_tree(&tree, builtin, &none, &[]).unwrap();
        assert!(current.get("kerbside").is_some() && current.get("valkey").is_some());
        let old = load_for_tree(&tree, builtin, &none, kolla_22).unwrap();
        assert!(old.get("kerbside").is_none() && old.get("valkey").is_some());
        // a [kerbside-user] section still adds it
        let configured = BTreeMap::from([(
            "kerbside".to_string(),
            UserEntry {
                uid: 1,
                gid: 1,
                group: None,
            },
        )]);
        let old = load_for_tree(&tree, builtin, &configured, kolla_22).unwrap();
        assert_eq!(old.get("kerbside").unwrap().uid, 1);
    }
}

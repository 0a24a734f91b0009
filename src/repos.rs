//! `handle_repos()`: Dockerfile lines enabling or disabling the package repositories described in
//! the tree's `repos.yaml` (kolla's schema), for one distro and architecture.

use std::collections::BTreeMap;

use serde::Deserialize;

/// One repository as written in `repos.yaml`; rpm and deb keys share the struct.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RepoEntry {
    // rpm
    pub name: Option<String>,
    pub baseurl: Option<UrlList>,
    pub metalink: Option<String>,
    pub mirrorlist: Option<String>,
    pub gpgkey: Option<String>,
    pub gpgcheck: Option<bool>,
    pub repo_gpgcheck: Option<bool>,
    pub file_group: Option<String>,
    // deb
    pub url: Option<String>,
    pub suite: Option<String>,
    pub component: Option<String>,
    pub gpg_key: Option<String>,
    pub arch: Option<String>,
    pub trusted: Option<bool>,
    // both
    pub distro: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum UrlList {
    One(String),
    Many(Vec<String>),
}

impl UrlList {
    fn urls(&self) -> Vec<&str> {
        match self {
            UrlList::One(url) => url.split_whitespace().collect(),
            UrlList::Many(urls) => urls.iter().map(String::as_str).collect(),
        }
    }
}

/// `repos.yaml`: section (`deb`, `debian`, `rocky-aarch64`...) → repository name → entry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Repos {
    sections: BTreeMap<String, BTreeMap<String, RepoEntry>>,
}

/// What a distro looks like to `handle_repos`.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    pub package_type: &'a str,
    pub distro: &'a str,
    pub arch: &'a str,
    pub release_codename: &'a str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Enable,
    Disable,
}

impl Repos {
    pub fn parse(text: &str) -> Result<Repos, String> {
        let sections =
            serde_norway::from_str::<Option<BTreeMap<String, BTreeMap<String, RepoEntry>>>>(text)
                .map_err(|e| e.to_string())?
                .unwrap_or_default();
        Ok(Repos { sections })
    }

    /// The entry for `name` merged over the sections `<package type>`, `<distro>` and
    /// `<distro>-<arch>`: later sections win key by key.
    pub fn resolve(&self, target: Target<'_>, name: &str) -> Option<RepoEntry> {
        let sections = [
            target.package_type.to_string(),
            target.distro.to_string(),
            format!("{}-{}", target.distro, target.arch),
        ];
        let mut merged: Option<RepoEntry> = None;
        for section in &sections {
            let Some(entry) = self.sections.get(section).and_then(|s| s.get(name)) else {
                continue;
            };
            let base = merged.get_or_insert_with(RepoEntry::default);
            let has_url = entry.url.is_some()
                || entry.baseurl.is_some()
                || entry.metalink.is_some()
                || entry.mirrorlist.is_some();
            if has_url && entry.distro.is_none() {
                // A URL given later turns a distro-provided repo into a real one.
                base.distro = None;
            }
            merge_entry(base, entry);
        }
        merged
    }

    /// The `RUN` line for `names`, or `""` when nothing needs doing.
    pub fn handle(
        &self,
        target: Target<'_>,
        names: &[String],
        mode: Mode,
    ) -> Result<String, String> {
        let mut commands = Vec::new();
        for name in names {
            let entry = self.resolve(target, name).ok_or_else(|| {
                format!(
                    "repository `{name}` is not defined for {} in repos.yaml",
                    target.distro
                )
            })?;
            let command = match target.package_type {
                "rpm" => rpm_command(name, &entry, mode)?,
                _ => deb_command(name, &entry, mode, target)?,
            };
            commands.extend(command);
        }
        if commands.is_empty() {
            Ok(String::new())
        } else {
            Ok(format!("RUN {}", commands.join(" && ")))
        }
    }
}

fn merge_entry(base: &mut RepoEntry, over: &RepoEntry) {
    macro_rules! take {
        ($($field:ident),*) => { $( if over.$field.is_some() { base.$field = over.$field.clone(); } )* };
    }
    take!(
        name,
        baseurl,
        metalink,
        mirrorlist,
        gpgkey,
        gpgcheck,
        repo_gpgcheck,
        file_group,
        url,
        suite,
        component,
        gpg_key,
        arch,
        trusted,
        distro
    );
}

fn rpm_command(repo: &str, entry: &RepoEntry, mode: Mode) -> Result<Option<String>, String> {
    let name = entry.name.as_deref().unwrap_or(repo);
    if entry.distro == Some(true) {
        let flag = if mode == Mode::Enable {
            "--enable"
        } else {
            "--disable"
        };
        return Ok(Some(format!("dnf config-manager {flag} {name} || true")));
    }
    if mode == Mode::Disable {
        return Ok(Some(format!("dnf config-manager --disable {name} || true")));
    }
    let file = format!("/etc/yum.repos.d/{repo}.repo");
    let mut lines = vec![
        format!("[{name}]"),
        format!("name={name}"),
        "enabled=1".to_string(),
    ];
    if let Some(check) = entry.gpgcheck {
        lines.push(format!("gpgcheck={}", u8::from(check)));
    }
    if let Some(check) = entry.repo_gpgcheck {
        lines.push(format!("repo_gpgcheck={}", u8::from(check)));
    }
    let gpgkey = entry
        .gpgkey
        .as_deref()
        .ok_or_else(|| format!("repository `{repo}` in repos.yaml has no `gpgkey`"))?;
    let mut keys = gpgkey.split_whitespace();
    lines.push(format!("gpgkey={}", keys.next().unwrap_or_default()));
    lines.extend(keys.map(|k| format!("       {k}")));
    if let Some(urls) = &entry.baseurl {
        let urls = urls.urls();
        lines.push(format!(
            "baseurl={}",
            urls.first().copied().unwrap_or_default()
        ));
        lines.extend(urls.iter().skip(1).map(|u| format!("        {u}")));
    } else if let Some(metalink) = &entry.metalink {
        lines.push(format!("metalink={metalink}"));
    } else if let Some(mirrorlist) = &entry.mirrorlist {
        lines.push(format!("mirrorlist={mirrorlist}"));
    } else {
        return Err(format!(
            "repository `{repo}` in repos.yaml has no `baseurl`, `metalink` or `mirrorlist`"
        ));
    }
    let mut command = format!("grep -rlF '[{name}]' /etc/yum.repos.d/ | xargs -r rm -f");
    for (i, line) in lines.iter().enumerate() {
        let redirect = if i == 0 { ">" } else { ">>" };
        command.push_str(&format!(" && echo '{line}' {redirect}{file}"));
    }
    Ok(Some(command))
}

fn deb_command(
    repo: &str,
    entry: &RepoEntry,
    mode: Mode,
    target: Target<'_>,
) -> Result<Option<String>, String> {
    // Distro repos are always there, and apt has nothing to disable.
    if entry.distro == Some(true) || mode == Mode::Disable {
        return Ok(None);
    }
    let url = entry
        .url
        .as_deref()
        .ok_or_else(|| format!("repository `{repo}` in repos.yaml has no `url`"))?;
    let suite = entry.suite.as_deref().unwrap_or_default().replace(
        "{openstack_release_codename}",
        &target.release_codename.to_lowercase(),
    );
    let mut fields = vec![
        format!("Uris: {url}"),
        format!(
            "Components: {}",
            entry.component.as_deref().unwrap_or("main")
        ),
        "Types: deb".to_string(),
        format!("Suites: {suite}"),
    ];
    if let Some(key) = &entry.gpg_key {
        let key = if key.starts_with('/') {
            key.clone()
        } else {
            format!("/etc/kolla/apt-keys/{key}")
        };
        fields.push(format!("Signed-By: {key}"));
    }
    if entry.trusted == Some(true) {
        fields.push("Trusted: yes".to_string());
    }
    if let Some(arch) = &entry.arch {
        fields.push(format!("Architectures: {arch}"));
    }
    let file = format!("/etc/apt/sources.list.d/{repo}.sources");
    let body = fields.join("\\n");
    Ok(Some(format!("echo '{body}' >{file}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    const YAML: &str = r#"
deb:
  grafana:
    url: "https://apt.grafana.com"
    suite: "stable"
    component: "main"
    gpg_key: "grafana.asc"
ubuntu:
  cloud-archive:
    url: "http://ubuntu-cloud.archive.canonical.com/ubuntu"
    suite: "jammy-updates/{openstack_release_codename}"
    component: "main"
    gpg_key: "ubuntu-cloud-archive.asc"
rpm:
  grafana:
    name: "grafana"
    baseurl: "https://rpm.grafana.com"
    gpgkey: "https://rpm.grafana.com/gpg.key"
    gpgcheck: true
rocky:
  crb:
    name: "crb"
    distro: true
rocky-aarch64:
  grafana:
    baseurl: "https://rpm.grafana.com/aarch64"
"#;

    fn target<'a>(package_type: &'a str, distro: &'a str, arch: &'a str) -> Target<'a> {
        Target {
            package_type,
            distro,
            arch,
            release_codename: "Caracal",
        }
    }

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn deb_repo_becomes_a_deb822_file_with_the_codename() {
        let repos = Repos::parse(YAML).unwrap();
        let line = repos
            .handle(
                target("deb", "ubuntu", "x86_64"),
                &names(&["cloud-archive"]),
                Mode::Enable,
            )
            .unwrap();
        assert_eq!(
            line,
            "RUN echo 'Uris: http://ubuntu-cloud.archive.canonical.com/ubuntu\\nComponents: main\\n\
             Types: deb\\nSuites: jammy-updates/caracal\\nSigned-By: /etc/kolla/apt-keys/ubuntu-cloud-archive.asc' \
             >/etc/apt/sources.list.d/cloud-archive.sources"
        );
    }

    #[test]
    fn deb_disable_is_empty() {
        let repos = Repos::parse(YAML).unwrap();
        let t = target("deb", "debian", "x86_64");
        assert_eq!(
            repos
                .handle(t, &names(&["grafana"]), Mode::Disable)
                .unwrap(),
            ""
        );
    }

    #[test]
    fn rpm_distro_repo_uses_config_manager() {
        let repos = Repos::parse(YAML).unwrap();
        let t = target("rpm", "rocky", "x86_64");
        assert_eq!(
            repos.handle(t, &names(&["crb"]), Mode::Enable).unwrap(),
            "RUN dnf config-manager --enable crb || true"
        );
    }

    #[test]
    fn arch_section_wins_and_several_repos_chain() {
        let repos = Repos::parse(YAML).unwrap();
        let t = target("rpm", "rocky", "aarch64");
        let line = repos
            .handle(t, &names(&["crb", "grafana"]), Mode::Enable)
            .unwrap();
        assert!(
            line.starts_with(
                "RUN dnf config-manager --enable crb || true && grep -rlF '[grafana]'"
            ),
            "{line}"
        );
        assert!(
            line.contains(
                "echo 'baseurl=https://rpm.grafana.com/aarch64' >>/etc/yum.repos.d/grafana.repo"
            ),
            "{line}"
        );
        assert!(line.contains("echo 'gpgcheck=1'"), "{line}");
    }

    #[test]
    fn unknown_repo_is_an_error_naming_it() {
        let repos = Repos::parse(YAML).unwrap();
        let err = repos
            .handle(
                target("deb", "debian", "x86_64"),
                &names(&["nope"]),
                Mode::Enable,
            )
            .unwrap_err();
        assert!(err.contains("`nope`") && err.contains("debian"), "{err}");
    }
}

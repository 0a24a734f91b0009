//! `handle_repos()` and `cleanup_repos()`: Dockerfile lines enabling, disabling and restoring the
//! package repositories described in the tree's `repos.yaml` (kolla's schema), for one distro and
//! architecture. The strings are kolla's, character for character (`kolla/template/methods.py`),
//! so that kolla's tree and overrides written for it render the same with both tools; values are
//! formatted the way Python's `str()` does (`gpgcheck: true` gives `gpgcheck=True`).

use std::collections::BTreeSet;

use serde_norway::{Mapping, Value};

crate::common::error::message_error!(
    /// A repos.yaml that does not parse, or a repository the templates ask for that it lacks.
    ReposError
);

/// Where build-only repositories' original files are kept while the image builds.
const BACKUP_DIR: &str = "/tmp/kolla-repos-backup";
const URL_KEYS: [&str; 4] = ["baseurl", "metalink", "mirrorlist", "url"];

/// `repos.yaml`: section (`deb`, `debian`, `rocky-aarch64`...) → repository name → entry, in file
/// order. `defaults` is the tree's own file, before any `--repos-yaml` override.
#[derive(Debug, Clone, Default)]
pub struct Repos {
    data: Mapping,
    defaults: Mapping,
    overridden: bool,
    /// kolla before 23's `handle_repos`: no `grep -rlF '[name]' ... | xargs -r rm -f` guard
    /// before an rpm repository is written.
    pub kolla_before_23: bool,
    /// Another `handle_repos` than this one (kolla 20's, set by the kolla-compat stage).
    pub dialect: Option<Handler>,
}

/// A whole `handle_repos` of its own: the data, the distro, the names, the mode → the `RUN` line.
pub type Handler = fn(&Mapping, Target<'_>, &[String], Mode) -> Result<String, ReposError>;

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

/// One repository, its keys merged over the sections that apply.
type Entry = Mapping;

impl Repos {
    pub fn parse(text: &str) -> Result<Repos, ReposError> {
        let data = parse_sections(text)?;
        Ok(Repos {
            defaults: data.clone(),
            data,
            overridden: false,
            kolla_before_23: false,
            dialect: None,
        })
    }

    /// Lays an override file over the repositories, as kolla's `repos_yaml`: an entry of the
    /// override replaces the whole entry of the same name in its section.
    pub fn merge_override(&mut self, text: &str) -> Result<(), ReposError> {
        for (section, repos) in parse_sections(text)? {
            let repos = match repos {
                Value::Mapping(m) => m,
                Value::Null => Mapping::new(),
                other => {
                    return Err(format!("section {section:?} is not a mapping: {other:?}").into());
                }
            };
            match self.data.get_mut(&section) {
                Some(Value::Mapping(existing)) => {
                    for (name, entry) in repos {
                        existing.insert(name, entry);
                    }
                }
                _ => {
                    self.data.insert(section, Value::Mapping(repos));
                }
            }
        }
        self.overridden = true;
        Ok(())
    }

    /// Lays `keys` over the entry `name` of `section` (creating both if needed), in the tree's
    /// own data: how a release row of `base/releases.toml` sets its repositories' suites and URLs.
    pub fn overlay_keys(
        &mut self,
        section: &str,
        name: &str,
        keys: &std::collections::BTreeMap<String, String>,
    ) {
        for data in [&mut self.data, &mut self.defaults] {
            let entry = child_mapping(child_mapping(data, section), name);
            for (k, v) in keys {
                entry.insert(Value::String(k.clone()), Value::String(v.clone()));
            }
        }
    }

    /// The entries for a distro: the sections `<package type>`, `<distro>` and `<distro>-<arch>`
    /// merged in that order, later keys winning; `distro` is dropped once a URL is known. Before
    /// kolla 23 (`whole_entries`) a later section's entry replaces the whole entry (a dict union).
    fn repo_list(data: &Mapping, target: Target<'_>, whole_entries: bool) -> Vec<(String, Entry)> {
        let mut result: Vec<(String, Entry)> = Vec::new();
        let sections = [
            target.package_type.to_string(),
            target.distro.to_string(),
            format!("{}-{}", target.distro, target.arch),
        ];
        for section in &sections {
            let Some(Value::Mapping(repos)) = data.get(section.as_str()) else {
                continue;
            };
            for (name, info) in repos {
                let name = py_str(name);
                let info = match info {
                    Value::Mapping(m) => m.clone(),
                    _ => Mapping::new(),
                };
                match result.iter_mut().find(|(n, _)| *n == name) {
                    Some((_, merged)) if whole_entries => *merged = info,
                    Some((_, merged)) => {
                        for (k, v) in info {
                            merged.insert(k, v);
                        }
                        if URL_KEYS.iter().any(|k| merged.contains_key(*k)) {
                            merged.remove("distro");
                        }
                    }
                    None => result.push((name, info)),
                }
            }
        }
        result
    }

    /// The `RUN` line for `names`, or `""` when nothing needs doing.
    pub fn handle(
        &self,
        target: Target<'_>,
        names: &[String],
        mode: Mode,
    ) -> Result<String, ReposError> {
        if let Some(handle) = self.dialect {
            return handle(&self.data, target, names, mode);
        }
        let mut line = RunLine {
            kolla_before_23: self.kolla_before_23,
            target,
            repo_list: Self::repo_list(&self.data, target, self.kolla_before_23),
            default_list: Self::repo_list(&self.defaults, target, self.kolla_before_23),
            backed_up: BTreeSet::new(),
            commands: String::new(),
        };
        if target.package_type == "rpm" && self.overridden && !self.kolla_before_23 {
            self.check_file_groups(&line.repo_list, &line.default_list)?;
        }
        for (index, repo) in names.iter().enumerate() {
            let entry = find(&line.repo_list, repo).cloned().ok_or_else(|| {
                format!(
                    "repository `{repo}` is not defined for {} in repos.yaml",
                    target.distro
                )
            })?;
            line.add(repo, &entry, mode, index + 1 == names.len())?;
        }
        if line.commands.is_empty() {
            Ok(line.commands)
        } else {
            Ok(format!("RUN {}", line.commands))
        }
    }

    /// kolla's guard: overriding some distro repositories that share one `.repo` file (Rocky's
    /// baseos, appstream and crb) but not the others would lose the others.
    fn check_file_groups(
        &self,
        repo_list: &[(String, Entry)],
        default_list: &[(String, Entry)],
    ) -> Result<(), ReposError> {
        let default = |name: &str| default_list.iter().find(|(n, _)| n == name).map(|(_, e)| e);
        let flag = |e: &Entry, key: &str| e.get(key).is_some_and(truthy);
        let overridden: Vec<&str> = repo_list
            .iter()
            .filter(|(r, d)| !flag(d, "distro") && default(r).is_some_and(|e| flag(e, "distro")))
            .map(|(r, _)| r.as_str())
            .collect();
        if overridden.is_empty() {
            return Ok(());
        }
        let groups: Vec<&Value> = overridden
            .iter()
            .filter_map(|r| default(r).and_then(|e| e.get("file_group")))
            .filter(|g| truthy(g))
            .collect();
        let mut still: Vec<&str> = repo_list
            .iter()
            .filter(|(r, d)| {
                flag(d, "distro")
                    && !overridden.contains(&r.as_str())
                    && groups.contains(&d.get("file_group").unwrap_or(&Value::Null))
            })
            .map(|(r, _)| r.as_str())
            .collect();
        if still.is_empty() {
            return Ok(());
        }
        still.sort_unstable();
        let mut overridden = overridden;
        overridden.sort_unstable();
        Err(format!(
            "Repositories {} override distro-provided repos and will remove their .repo file. \
             Repositories {} are still using distro defaults and share the same file. Please \
             also override them in your repos.yaml.",
            py_list(&overridden),
            py_list(&still)
        )
        .into())
    }

    /// `cleanup_repos()`: restores (or removes) the files of build-only repositories, or `""`.
    pub fn cleanup(&self, target: Target<'_>) -> String {
        let repo_list = Self::repo_list(&self.data, target, self.kolla_before_23);
        let default_list = Self::repo_list(&self.defaults, target, self.kolla_before_23);
        let flag = |e: &Entry, key: &str| e.get(key).is_some_and(truthy);
        let mut commands: Vec<String> = Vec::new();
        let mut restored: BTreeSet<String> = BTreeSet::new();
        for (repo, info) in &repo_list {
            if !flag(info, "build_only") {
                continue;
            }
            if target.package_type == "rpm" && !flag(info, "distro") {
                let own = format!("{repo}.repo");
                let default_group = default_list
                    .iter()
                    .find(|(n, _)| n == repo)
                    .and_then(|(_, e)| e.get("file_group"));
                let group = [info.get("file_group"), default_group]
                    .into_iter()
                    .flatten()
                    .find(|v| truthy(v))
                    .map(py_str)
                    .unwrap_or_else(|| own.clone());
                if group != own {
                    commands.push(format!("rm -f /etc/yum.repos.d/{own}"));
                    if !restored.insert(group.clone()) {
                        continue;
                    }
                }
                commands.push(format!(
                    "[ -f {BACKUP_DIR}/{group}.enabled ] && ( mv {BACKUP_DIR}/{group} \
                     /etc/yum.repos.d/{group} 2>/dev/null || rm -f /etc/yum.repos.d/{group} ) || true"
                ));
            } else if target.package_type == "deb" && !flag(info, "distro") {
                commands.push(format!(
                    "[ -f {BACKUP_DIR}/{repo}.enabled ] && ( mv {BACKUP_DIR}/{repo}.sources \
                     /etc/apt/sources.list.d/{repo}.sources 2>/dev/null || rm -f \
                     /etc/apt/sources.list.d/{repo}.sources ) || true"
                ));
            }
        }
        if commands.is_empty() {
            return String::new();
        }
        commands.push(format!("rm -rf {BACKUP_DIR}"));
        format!("RUN {}", commands.join(" \\\n    && "))
    }
}

/// The tree's `repos.yaml` (`base/repos.yaml`, `repos.yaml`, or beside a kolla `docker/` folder:
/// `../template/repos.yaml` of an installed kolla, `../kolla/template/repos.yaml` of a checkout),
/// with `override_file` laid over it.
pub fn load_for_tree(
    tree: &crate::tree::Tree,
    override_file: Option<&std::path::Path>,
) -> crate::common::error::Result<Option<Repos>> {
    use crate::common::error::Error;
    let mut found = tree.read_data(&["base/repos.yaml", "repos.yaml"])?;
    if found.is_none() && tree.layout == crate::tree::Layout::Kolla {
        for rel in ["../template/repos.yaml", "../kolla/template/repos.yaml"] {
            let path = tree.root.join(rel);
            if path.is_file() {
                let text = std::fs::read_to_string(&path).map_err(|source| Error::Read {
                    path: path.clone(),
                    source,
                })?;
                found = Some((path, text));
                break;
            }
        }
    }
    let Some((path, text)) = found else {
        // No repos.yaml beside the tree (kolla before 23 installs its `docker/` folder under
        // `<prefix>/share/kolla`, away from its package): the file given is the whole
        // repos.yaml, as kolla's `repos_yaml` option replaces its own file.
        return match override_file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
                    path: path.to_path_buf(),
                    source,
                })?;
                Repos::parse(&text)
                    .map(Some)
                    .map_err(|message| Error::Config {
                        path: path.to_path_buf(),
                        message: message.to_string(),
                    })
            }
            None => Ok(None),
        };
    };
    let mut repos = Repos::parse(&text).map_err(|message| Error::Config {
        path,
        message: message.to_string(),
    })?;
    if let Some(path) = override_file {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
            path: path.to_path_buf(),
            source,
        })?;
        repos
            .merge_override(&text)
            .map_err(|message| Error::Config {
                path: path.to_path_buf(),
                message: message.to_string(),
            })?;
    }
    Ok(Some(repos))
}

/// The commands of one `handle_repos` call, as they are added repository by repository.
struct RunLine<'a> {
    kolla_before_23: bool,
    target: Target<'a>,
    /// The entries for the target, with any override, and the tree's own.
    repo_list: Vec<(String, Entry)>,
    default_list: Vec<(String, Entry)>,
    /// The files already saved before a build-only repository replaces them.
    backed_up: BTreeSet<String>,
    commands: String,
}

impl RunLine<'_> {
    /// The commands for one repository; `last` ends the line (no ` && ` after it).
    fn add(&mut self, repo: &str, entry: &Entry, mode: Mode, last: bool) -> Result<(), ReposError> {
        if self.target.package_type == "rpm" {
            match mode {
                Mode::Enable => {
                    if flag(entry, "distro") {
                        let name = py_str(required(repo, entry, "name")?);
                        self.push(&format!("dnf config-manager --enable {name} || true"));
                    } else {
                        self.rpm_write(repo, entry)?;
                    }
                    if !last {
                        self.push(" && ");
                    }
                }
                Mode::Disable => {
                    // kolla only disables distro repositories (a repository it wrote stays
                    // enabled); disabling one written by an earlier `enable` is this tool's
                    // addition (kolla's tree never does it). kolla joins nothing between several
                    // disabled repositories: kept, for identical output.
                    let name = py_str(required(repo, entry, "name")?);
                    self.push(&format!("dnf config-manager --disable {name} || true"));
                }
            }
        } else if self.target.package_type == "deb"
            && mode == Mode::Enable
            && (self.kolla_before_23 || !flag(entry, "distro"))
        {
            self.deb_write(repo, entry)?;
            if !last {
                self.push(" && ");
            }
        }
        Ok(())
    }

    fn push(&mut self, text: &str) {
        self.commands.push_str(text);
    }

    /// Writes `/etc/yum.repos.d/<repo>.repo` for a repository the distro does not provide.
    fn rpm_write(&mut self, repo: &str, entry: &Entry) -> Result<(), ReposError> {
        let name = py_str(required(repo, entry, "name")?);
        if flag(entry, "build_only") && !self.kolla_before_23 {
            self.rpm_back_up(repo, entry);
        }
        let file = format!("/etc/yum.repos.d/{repo}.repo");
        if !self.kolla_before_23 {
            self.push(&format!(
                "grep -rlF '[{name}]' /etc/yum.repos.d/ 2>/dev/null | xargs -r rm -f && "
            ));
        }
        self.push(&format!(
            "echo '[{name}]' >{file} && echo 'name={name}' >>{file} && \
             echo 'enabled=1' >>{file}"
        ));
        for key in ["gpgcheck", "repo_gpgcheck"] {
            if flag(entry, key) {
                let value = py_str(&entry[key]);
                self.push(&format!(" && echo '{key}={value}' >>{file}"));
            }
        }
        if !self.kolla_before_23
            && !["baseurl", "metalink", "mirrorlist"]
                .iter()
                .any(|k| entry.contains_key(*k))
        {
            return Err(
                format!("Repository '{repo}' has no baseurl, metalink, or mirrorlist").into(),
            );
        }
        self.rpm_keys_and_urls(repo, entry, &file)
    }

    /// Saves the `.repo` file a build-only repository replaces (its file group's, else its
    /// own), once per file, for `cleanup_repos()` to put back.
    fn rpm_back_up(&mut self, repo: &str, entry: &Entry) {
        let default_entry = find(&self.default_list, repo);
        let file = [
            entry.get("file_group"),
            default_entry.and_then(|d| d.get("file_group")),
        ]
        .into_iter()
        .flatten()
        .find(|v| truthy(v))
        .map(py_str)
        .unwrap_or_else(|| format!("{repo}.repo"));
        if self.backed_up.insert(file.clone()) {
            self.push(&format!(
                "mkdir -p {BACKUP_DIR} && cp /etc/yum.repos.d/{file} \
                 {BACKUP_DIR}/{file} 2>/dev/null || true && touch \
                 {BACKUP_DIR}/{file}.enabled && "
            ));
        }
    }

    /// The `gpgkey` lines, then the first of `baseurl` (one line each), `metalink`, `mirrorlist`.
    fn rpm_keys_and_urls(
        &mut self,
        repo: &str,
        entry: &Entry,
        file: &str,
    ) -> Result<(), ReposError> {
        let gpgkey = entry
            .get("gpgkey")
            .ok_or_else(|| format!("Repository '{repo}' has no gpgkey"))?;
        for (i, key) in py_splitlines(&text(gpgkey, repo, "gpgkey")?)
            .iter()
            .enumerate()
        {
            if i == 0 {
                self.push(&format!(" && echo 'gpgkey={key}' >>{file}"));
            } else {
                self.push(&format!(" && echo '       {key}' >>{file}"));
            }
        }
        if let Some(baseurl) = entry.get("baseurl") {
            for url in py_splitlines(&text(baseurl, repo, "baseurl")?) {
                self.push(&format!(" && echo 'baseurl={url}' >>{file}"));
            }
        } else if let Some(metalink) = entry.get("metalink") {
            let metalink = py_str(metalink);
            self.push(&format!(" && echo 'metalink={metalink}' >>{file}"));
        } else if let Some(mirrorlist) = entry.get("mirrorlist") {
            let mirrorlist = py_str(mirrorlist);
            self.push(&format!(" && echo 'mirrorlist={mirrorlist}' >>{file}"));
        }
        Ok(())
    }

    /// Writes `/etc/apt/sources.list.d/<repo>.sources`. kolla 21 and 22 write every deb
    /// repository as given: no distro skip, key path, codename in the suite, `trusted` or
    /// build-only backups (kolla 23's).
    fn deb_write(&mut self, repo: &str, entry: &Entry) -> Result<(), ReposError> {
        let new = !self.kolla_before_23;
        let file = format!("/etc/apt/sources.list.d/{repo}.sources");
        if new && flag(entry, "build_only") && self.backed_up.insert(file.clone()) {
            self.push(&format!(
                "mkdir -p {BACKUP_DIR} && cp {file} {BACKUP_DIR}/{repo}.sources \
                 2>/dev/null || true && touch {BACKUP_DIR}/{repo}.enabled && "
            ));
        }
        let gpg_key = text(required(repo, entry, "gpg_key")?, repo, "gpg_key")?;
        let signed_by = if new && gpg_key.starts_with('/') {
            gpg_key
        } else {
            format!("/etc/kolla/apt-keys/{gpg_key}")
        };
        let mut suite = text(required(repo, entry, "suite")?, repo, "suite")?;
        if new {
            suite = suite.replace(
                "{openstack_release_codename}",
                &self.target.release_codename.to_lowercase(),
            );
        }
        let component = py_str(required(repo, entry, "component")?);
        let url = py_str(required(repo, entry, "url")?);
        self.push(&format!(
            "echo 'Uris: {url}' >{file} && echo 'Components: {component}' >>{file} && \
             echo 'Types: deb' >>{file} && echo 'Suites: {suite}' >>{file} && \
             echo 'Signed-By: {signed_by}' >>{file}"
        ));
        if new && flag(entry, "trusted") {
            self.push(&format!(" && echo 'Trusted: yes' >>{file}"));
        }
        if let Some(arch) = entry.get("arch") {
            let arch = py_str(arch);
            self.push(&format!(" && echo 'Architectures: {arch}' >>{file}"));
        }
        Ok(())
    }
}

/// The entry `name` of a list.
fn find<'a>(list: &'a [(String, Entry)], name: &str) -> Option<&'a Entry> {
    list.iter().find(|(n, _)| n == name).map(|(_, e)| e)
}

/// Whether `key` of an entry is set and true to Python.
fn flag(entry: &Entry, key: &str) -> bool {
    entry.get(key).is_some_and(truthy)
}

/// A key the repository must have, as kolla's `KeyError`.
fn required<'e>(repo: &str, entry: &'e Entry, key: &str) -> Result<&'e Value, ReposError> {
    entry.get(key).ok_or_else(|| {
        format!("repository `{repo}` in repos.yaml has no `{key}` (KeyError: '{key}')").into()
    })
}

/// The mapping under `key`, made (or made a mapping) if it is not one.
fn child_mapping<'a>(map: &'a mut Mapping, key: &str) -> &'a mut Mapping {
    let value = map
        .entry(Value::String(key.to_string()))
        .or_insert(Value::Null);
    if !matches!(value, Value::Mapping(_)) {
        *value = Value::Mapping(Mapping::new());
    }
    match value {
        Value::Mapping(m) => m,
        _ => unreachable!("made a mapping above"),
    }
}

fn parse_sections(text: &str) -> Result<Mapping, ReposError> {
    match serde_norway::from_str::<Value>(text).map_err(|e| e.to_string())? {
        Value::Mapping(m) => Ok(m),
        Value::Null => Ok(Mapping::new()),
        _ => Err("expected a mapping of sections (deb, debian, rpm, rocky...)".into()),
    }
}

fn text(value: &Value, repo: &str, key: &str) -> Result<String, ReposError> {
    match value {
        Value::String(s) => Ok(s.clone()),
        other => Err(format!(
            "repository `{repo}` in repos.yaml: `{key}` must be a string, not {other:?}"
        )
        .into()),
    }
}

/// Python's truth value of a YAML value.
pub(crate) fn truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Sequence(s) => !s.is_empty(),
        Value::Mapping(m) => !m.is_empty(),
        Value::Tagged(t) => truthy(&t.value),
    }
}

/// Python's `str()` of a YAML value, as kolla's `handle_repos` writes it.
pub(crate) fn py_str(value: &Value) -> String {
    crate::common::python::py_str(&minijinja::Value::from(minijinja::value::Serde(value)))
}

fn py_list(items: &[&str]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| format!("'{s}'")).collect();
    format!("[{}]", quoted.join(", "))
}

/// Python's `str.splitlines()`.
fn py_splitlines(s: &str) -> Vec<String> {
    let mut lines = Vec::new();
    let mut current = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\r' => {
                if chars.peek() == Some(&'\n') {
                    chars.next();
                }
                lines.push(std::mem::take(&mut current));
            }
            '\n' | '\u{0b}' | '\u{0c}' | '\u{1c}' | '\u{1d}' | '\u{1e}' | '\u{85}' | '\u{2028}'
            | '\u{2029}' => lines.push(std::mem::take(&mut current)),
            c => current.push(c),
        }
    }
    if !current.is_empty() {
        lines.push(current);
    }
    lines
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
  ubuntu:
    distro: True
  cloud-archive:
    url: "http://ubuntu-cloud.archive.canonical.com/ubuntu"
    suite: "jammy-updates/{openstack_release_codename}"
    component: "main"
    gpg_key: "/usr/share/keyrings/ubuntu-cloud-keyring.gpg"
  mirror:
    url: "http://mirror.example.org/ubuntu"
    suite: "noble"
    component: "main"
    gpg_key: "m.asc"
    arch: "amd64"
    trusted: true
    build_only: true
rpm:
  grafana:
    name: "grafana"
    baseurl: |
      https://rpm.grafana.com
      https://rpm2.grafana.com
    gpgkey: "https://rpm.grafana.com/gpg.key"
    gpgcheck: 1
  epel:
    name: "epel"
    metalink: "https://mirrors.example.org/metalink"
    gpgkey: "k"
    repo_gpgcheck: true
  crb:
    name: "crb"
    distro: true
  extras:
    name: "extras"
    distro: true
rocky:
  baseos:
    distro: true
    file_group: "rocky.repo"
    name: "baseos"
  appstream:
    distro: true
    file_group: "rocky.repo"
    name: "appstream"
rocky-aarch64:
  grafana:
    baseurl: "https://rpm.grafana.com/aarch64"
"#;

    const fn target<'a>(package_type: &'a str, distro: &'a str, arch: &'a str) -> Target<'a> {
        Target {
            package_type,
            distro,
            arch,
            release_codename: "Caracal",
        }
    }

    const UBUNTU: Target = target("deb", "ubuntu", "x86_64");
    const DEBIAN: Target = target("deb", "debian", "x86_64");
    const ROCKY: Target = target("rpm", "rocky", "x86_64");

    fn repos() -> Repos {
        Repos::parse(YAML).unwrap()
    }

    /// The `RUN` line of `repos` for the repositories `list`.
    fn handle(repos: &Repos, t: Target, list: &[&str], mode: Mode) -> Result<String, ReposError> {
        let names: Vec<String> = list.iter().map(|s| s.to_string()).collect();
        repos.handle(t, &names, mode)
    }

    /// `line` holds each of `present` and none of `absent`.
    #[track_caller]
    fn assert_has(line: &str, present: &[&str], absent: &[&str]) {
        for part in present {
            assert!(line.contains(part), "{part}: {line}");
        }
        for part in absent {
            assert!(!line.contains(part), "{part}: {line}");
        }
    }

    #[test]
    fn deb_repo_is_written_line_by_line_as_kolla_does() {
        let line = handle(&repos(), UBUNTU, &["ubuntu", "cloud-archive"], Mode::Enable).unwrap();
        let f = "/etc/apt/sources.list.d/cloud-archive.sources";
        assert_eq!(
            line,
            format!(
                "RUN echo 'Uris: http://ubuntu-cloud.archive.canonical.com/ubuntu' >{f} && \
                 echo 'Components: main' >>{f} && echo 'Types: deb' >>{f} && \
                 echo 'Suites: jammy-updates/caracal' >>{f} && \
                 echo 'Signed-By: /usr/share/keyrings/ubuntu-cloud-keyring.gpg' >>{f}"
            )
        );
    }

    #[test]
    fn deb_build_only_repo_is_backed_up_and_cleaned_up() {
        let repos = repos();
        let line = handle(&repos, UBUNTU, &["mirror", "ubuntu"], Mode::Enable).unwrap();
        assert!(
            line.starts_with("RUN mkdir -p /tmp/kolla-repos-backup && cp "),
            "{line}"
        );
        assert!(
            line.contains("echo 'Signed-By: /etc/kolla/apt-keys/m.asc'"),
            "{line}"
        );
        assert!(line.contains(" && echo 'Trusted: yes' >>"), "{line}");
        // The separator after a non-last repository stays even when the next one adds nothing.
        assert!(
            line.ends_with(
                "echo 'Architectures: amd64' >>/etc/apt/sources.list.d/mirror.sources && "
            ),
            "{line}"
        );
        assert_eq!(
            repos.cleanup(UBUNTU),
            "RUN [ -f /tmp/kolla-repos-backup/mirror.enabled ] && ( mv /tmp/kolla-repos-backup/mirror.sources \
             /etc/apt/sources.list.d/mirror.sources 2>/dev/null || rm -f /etc/apt/sources.list.d/mirror.sources ) || true \\\n    \
             && rm -rf /tmp/kolla-repos-backup"
        );
        assert_eq!(repos.cleanup(ROCKY), "");
    }

    #[test]
    fn deb_disable_is_empty() {
        assert_eq!(
            handle(&repos(), DEBIAN, &["grafana"], Mode::Disable).unwrap(),
            ""
        );
    }

    #[test]
    fn rpm_distro_repos_use_config_manager_and_disable_has_no_separator() {
        let repos = repos();
        assert_eq!(
            handle(&repos, ROCKY, &["crb", "extras"], Mode::Enable).unwrap(),
            "RUN dnf config-manager --enable crb || true && dnf config-manager --enable extras || true"
        );
        assert_eq!(
            handle(&repos, ROCKY, &["crb", "grafana", "extras"], Mode::Disable).unwrap(),
            "RUN dnf config-manager --disable crb || truednf config-manager --disable grafana || \
             truednf config-manager --disable extras || true"
        );
    }

    #[test]
    fn rpm_repo_file_has_python_formatted_values_and_one_line_per_url() {
        let repos = repos();
        let f = "/etc/yum.repos.d/grafana.repo";
        assert_eq!(
            handle(&repos, ROCKY, &["grafana"], Mode::Enable).unwrap(),
            format!(
                "RUN grep -rlF '[grafana]' /etc/yum.repos.d/ 2>/dev/null | xargs -r rm -f && \
                 echo '[grafana]' >{f} && echo 'name=grafana' >>{f} && echo 'enabled=1' >>{f} && \
                 echo 'gpgcheck=1' >>{f} && echo 'gpgkey=https://rpm.grafana.com/gpg.key' >>{f} && \
                 echo 'baseurl=https://rpm.grafana.com' >>{f} && echo 'baseurl=https://rpm2.grafana.com' >>{f}"
            )
        );
        let mut old_kolla = repos.clone();
        old_kolla.kolla_before_23 = true;
        let line = handle(&old_kolla, ROCKY, &["grafana"], Mode::Enable).unwrap();
        assert!(
            line.starts_with(&format!("RUN echo '[grafana]' >{f} && echo 'name=grafana'")),
            "kolla 22 writes the file without removing other definitions first: {line}"
        );
        let epel = handle(&repos, ROCKY, &["epel"], Mode::Enable).unwrap();
        assert!(epel.contains("echo 'repo_gpgcheck=True' >>"), "{epel}");
        assert!(
            epel.ends_with(
                "echo 'metalink=https://mirrors.example.org/metalink' >>/etc/yum.repos.d/epel.repo"
            ),
            "{epel}"
        );
    }

    #[test]
    fn arch_section_wins_key_by_key() {
        let rocky_arm = target("rpm", "rocky", "aarch64");
        let line = handle(&repos(), rocky_arm, &["grafana"], Mode::Enable).unwrap();
        assert_has(
            &line,
            &["echo 'baseurl=https://rpm.grafana.com/aarch64' >>"],
            &["rpm2"],
        );
    }

    #[test]
    fn release_keys_overlay_the_entry_key_by_key() {
        let mut repos = repos();
        let keys = std::collections::BTreeMap::from([(
            "baseurl".to_string(),
            "https://rpm.example.org/epoxy".to_string(),
        )]);
        repos.overlay_keys("rocky", "grafana", &keys);
        let line = handle(&repos, ROCKY, &["grafana"], Mode::Enable).unwrap();
        // The keys it does not set stay those of the rpm section.
        assert_has(
            &line,
            &[
                "baseurl=https://rpm.example.org/epoxy",
                "gpgkey=https://rpm.grafana.com/gpg.key",
            ],
            &["rpm2"],
        );
    }

    #[test]
    fn overriding_part_of_a_shared_distro_file_is_refused() {
        let mut repos = repos();
        repos
            .merge_override("rocky:\n  baseos:\n    name: baseos\n    baseurl: http://m/baseos\n    gpgkey: k\n")
            .unwrap();
        let err = handle(&repos, ROCKY, &["baseos"], Mode::Enable).unwrap_err();
        assert!(
            err.starts_with("Repositories ['baseos'] override distro-provided repos"),
            "{err}"
        );
        assert!(
            err.contains("Repositories ['appstream'] are still using"),
            "{err}"
        );
    }

    #[test]
    fn unknown_repo_is_an_error_naming_it() {
        let err = handle(&repos(), DEBIAN, &["nope"], Mode::Enable).unwrap_err();
        assert!(err.contains("`nope`") && err.contains("debian"), "{err}");
    }

    #[test]
    fn splitlines_and_str_follow_python() {
        assert_eq!(py_splitlines("a\nb\r\nc\n"), ["a", "b", "c"]);
        assert_eq!(py_splitlines("a\n\nb"), ["a", "", "b"]);
        assert_eq!(py_str(&Value::Bool(true)), "True");
        assert_eq!(
            py_str(&serde_norway::from_str::<Value>("1.0").unwrap()),
            "1.0"
        );
    }

    #[test]
    fn repos_yaml_given_for_a_tree_without_one_is_the_whole_file() {
        // kolla before 23, installed from a wheel: `<prefix>/share/kolla/docker`, no repos.yaml
        let dir = tempfile::tempdir().unwrap();
        let docker = dir.path().join("share/kolla/docker");
        std::fs::create_dir_all(docker.join("base")).unwrap();
        std::fs::write(docker.join("base/Dockerfile.j2"), "FROM x\n").unwrap();
        let tree = crate::tree::Tree::load(&docker, &[]).unwrap();
        assert!(load_for_tree(&tree, None).unwrap().is_none());
        let file = dir.path().join("repos.yaml");
        std::fs::write(&file, YAML).unwrap();
        let repos = load_for_tree(&tree, Some(&file)).unwrap().unwrap();
        let line = handle(&repos, UBUNTU, &["cloud-archive"], Mode::Enable).unwrap();
        assert!(line.contains("cloud-archive.sources"), "{line}");
        std::fs::write(&file, "- not a mapping\n").unwrap();
        let err = load_for_tree(&tree, Some(&file)).unwrap_err().to_string();
        assert!(err.contains("repos.yaml"), "{err}");
    }
}

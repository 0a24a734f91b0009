//! kolla 20's `handle_repos`: its `repos.yaml` maps a repository name to the distro's own name
//! per `<distro>-<arch>` section (falling back to `<distro>`); rpm repositories are switched with
//! one `dnf config-manager --enable a --enable b || true`, deb repositories written as deb822
//! files; a repository the section does not define is skipped (kolla 21 made it an error).

use serde_norway::{Mapping, Value};

use crate::tree::repos::{Mode, ReposError, Target, py_str, truthy};

/// The `RUN` line kolla 20 writes for `names`, or `""`.
pub fn handle(
    data: &Mapping,
    target: Target<'_>,
    names: &[String],
    mode: Mode,
) -> Result<String, ReposError> {
    let section = format!("{}-{}", target.distro, target.arch);
    let list = match data
        .get(section.as_str())
        .or_else(|| data.get(target.distro))
    {
        Some(Value::Mapping(m)) => m,
        Some(_) => return Ok(String::new()),
        None => {
            return Err(format!(
                "repos.yaml has neither a `{section}` nor a `{}` section (KeyError)",
                target.distro
            )
            .into());
        }
    };
    let switch = match mode {
        Mode::Enable => "--enable",
        Mode::Disable => "--disable",
    };
    let mut commands = String::new();
    for repo in names {
        let Some(entry) = list.get(repo.as_str()) else {
            continue;
        };
        if target.package_type == "rpm" {
            commands.push_str(&format!(" {switch} {}", py_str(entry)));
        } else if target.package_type == "deb" && mode == Mode::Enable {
            let get = |key: &str| match entry {
                Value::Mapping(m) => m.get(key),
                _ => None,
            };
            let (Some(url), Some(component), Some(suite), Some(key)) =
                (get("url"), get("component"), get("suite"), get("gpg_key"))
            else {
                continue; // KeyError: kolla skips the repository
            };
            let file = format!("/etc/apt/sources.list.d/{repo}.sources");
            commands.push_str(&format!(
                "echo 'Uris: {}' >{file} && echo 'Components: {}' >>{file} && echo 'Types: deb' \
                 >>{file} && echo 'Suites: {}' >>{file} && echo 'Signed-By: \
                 /etc/kolla/apt-keys/{}' >>{file} && ",
                py_str(url),
                py_str(component),
                py_str(suite),
                py_str(key)
            ));
            if let Some(arch) = get("arch").filter(|a| truthy(a)) {
                commands.push_str(&format!(
                    "echo 'Architectures: {}' >>{file} && ",
                    py_str(arch)
                ));
            }
        }
    }
    if target.package_type == "rpm" && !commands.is_empty() {
        commands = format!("dnf config-manager {commands} || true");
    } else if target.package_type == "deb" {
        // kolla cuts the trailing ` && ` (four characters) whatever the commands are
        let cut = commands.char_indices().rev().nth(3).map_or(0, |(i, _)| i);
        commands.truncate(cut);
    }
    if commands.is_empty() {
        Ok(commands)
    } else {
        Ok(format!("RUN {commands}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REPOS: &str = "
rocky:
  crb: \"crb\"
  epel: \"epel\"
debian:
  grafana:
    url: \"https://apt.grafana.com\"
    suite: \"stable\"
    component: \"main\"
    gpg_key: \"grafana.asc\"
debian-aarch64:
  rabbitmq:
    url: \"https://example.org/rabbitmq\"
    suite: \"trixie\"
    component: \"main\"
    gpg_key: \"rabbitmq.gpg\"
    arch: \"amd64\"
";

    /// The handler over REPOS for one `package_type`/`distro`/`arch` target.
    fn handled(target: &str, names: &[&str], mode: Mode) -> String {
        let data: Mapping = serde_norway::from_str(REPOS).unwrap();
        let [package_type, distro, arch]: [&str; 3] =
            target.split('/').collect::<Vec<_>>().try_into().unwrap();
        let target = Target {
            package_type,
            distro,
            arch,
            release_codename: "",
        };
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        handle(&data, target, &names, mode).unwrap()
    }

    #[test]
    fn rpm_switches_join_in_one_config_manager_call_and_unknown_ones_are_skipped() {
        let names = ["crb", "unknown", "epel"];
        let out = handled("rpm/rocky/x86_64", &names, Mode::Enable);
        assert_eq!(
            out,
            "RUN dnf config-manager  --enable crb --enable epel || true"
        );
        let out = handled("rpm/rocky/x86_64", &["crb"], Mode::Disable);
        assert_eq!(out, "RUN dnf config-manager  --disable crb || true");
        assert_eq!(handled("rpm/rocky/x86_64", &["x"], Mode::Enable), "");
    }

    #[test]
    fn deb_uses_the_arch_section_instead_of_the_distro_one() {
        let out = handled("deb/debian/x86_64", &["grafana", "crb"], Mode::Enable);
        assert_eq!(
            out,
            "RUN echo 'Uris: https://apt.grafana.com' >/etc/apt/sources.list.d/grafana.sources && \
             echo 'Components: main' >>/etc/apt/sources.list.d/grafana.sources && echo 'Types: \
             deb' >>/etc/apt/sources.list.d/grafana.sources && echo 'Suites: stable' \
             >>/etc/apt/sources.list.d/grafana.sources && echo 'Signed-By: \
             /etc/kolla/apt-keys/grafana.asc' >>/etc/apt/sources.list.d/grafana.sources"
        );
        // debian-aarch64 replaces debian: grafana is not defined there
        let out = handled("deb/debian/aarch64", &["grafana", "rabbitmq"], Mode::Enable);
        assert!(
            out.starts_with("RUN echo 'Uris: https://example.org/rabbitmq'"),
            "{out}"
        );
        assert!(
            out.ends_with("echo 'Architectures: amd64' >>/etc/apt/sources.list.d/rabbitmq.sources"),
            "{out}"
        );
        assert_eq!(
            handled("deb/debian/x86_64", &["grafana"], Mode::Disable),
            ""
        );
    }
}

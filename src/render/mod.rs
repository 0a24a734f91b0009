//! Rendering: a pure function of (template tree, variables) to Dockerfile text. Templates come
//! from memory (read by `tree`); no file, network or clock is touched while rendering.

use std::collections::BTreeMap;
use std::sync::Arc;

use minijinja::value::{Kwargs, Serde, ValueKind};
use minijinja::{Environment, ErrorKind, State, UndefinedBehavior, Value};
use rayon::prelude::*;

use crate::common::error::TemplateError;
use crate::common::python::py_str;
use crate::common::types::UndefinedMode;
use crate::settings::Naming;
use crate::tree::repos::{Mode, Repos, Target};
use crate::tree::users::Users;
use crate::tree::{ImageSource, Tree};

/// Everything templates can see besides the image's own name.
#[derive(Debug, Clone)]
pub struct Variables {
    pub naming: Naming,
    pub users: Users,
    pub clean_package_cache: bool,
    pub use_dumb_init: bool,
    pub docker_healthchecks: bool,
    pub kolla_version: String,
    pub supported_distro_name: String,
    /// kolla before 23 gives templates `build_date` (the day of the render); kolla 23 does not,
    /// though a template of its tree still prints it (empty).
    pub build_date: bool,
    /// The `--repos-yaml` override as given (kolla passes the path; empty for none).
    pub repos_yaml: String,
    /// kolla's `rpm_setup`: Dockerfile lines from `rpm_setup_config`.
    pub rpm_setup: Vec<String>,
    /// `ARG` lines put right after the first `FROM` line of every Dockerfile.
    pub pip_args: Vec<String>,
    /// Certificate files `base` installs (names inside its `ca-certificates/` folder).
    pub ca_certificates: Vec<String>,
    /// `--patches-path` (absolute), for kolla's `kolla_patch_sources` macro: set, it renders the
    /// lines that copy and apply the patches; none without the option.
    pub patches_path: Option<String>,
    pub env: BTreeMap<String, String>,
}

impl Variables {
    fn to_value(&self) -> Value {
        let n = &self.naming;
        let branch = n.openstack_branch();
        let mut map: BTreeMap<&str, Value> = BTreeMap::new();
        let mut put = |key, value: Value| {
            map.insert(key, value);
        };
        put("base_distro", n.base.as_str().into());
        put("base_distro_tag", n.base_tag.clone().into());
        put("base_image", n.base_image.clone().into());
        put("base_arch", n.base_arch.clone().into());
        put("debian_arch", n.debian_arch().into());
        put("install_type", n.install_type.as_str().into());
        put("base_package_type", n.base.package_type().into());
        put("distro_package_manager", n.base.package_manager().into());
        put(
            "supported_distro_name",
            self.supported_distro_name.clone().into(),
        );
        put("namespace", n.full_namespace().into());
        put("image_prefix", n.image_prefix.clone().into());
        put("tag", n.tag.clone().into());
        put("maintainer", n.maintainer.clone().into());
        put("openstack_release", n.openstack_release.clone().into());
        put(
            "openstack_release_codename",
            n.openstack_release_codename.clone().into(),
        );
        put("openstack_branch_slashed", branch.replace('-', "/").into());
        put("openstack_branch", branch.into());
        put("users", Value::from(Serde(&self.users)));
        put("clean_package_cache", self.clean_package_cache.into());
        put("use_dumb_init", self.use_dumb_init.into());
        put("docker_healthchecks", self.docker_healthchecks.into());
        put("kolla_version", self.kolla_version.clone().into());
        if self.build_date {
            put(
                "build_date",
                build_date(std::time::SystemTime::now()).into(),
            );
        }
        put("rpm_setup", Value::from(Serde(&self.rpm_setup)));
        put(
            "patches_path",
            (self.patches_path.clone()).map_or(Value::from(()), Value::from),
        );
        put("repos_yaml", self.repos_yaml.clone().into());
        put("ca_certificates", Value::from(Serde(&self.ca_certificates)));
        put("env", Value::from(Serde(&self.env)));
        Value::from(Serde(&map))
    }
}

/// kolla's `build_date` (`%Y%m%d`) of a moment, in UTC (kolla takes the local time).
fn build_date(at: std::time::SystemTime) -> String {
    let secs = at
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    // Howard Hinnant's civil_from_days.
    let z = (secs / 86_400) as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}{month:02}{day:02}")
}

/// An override file as given on the command line.
#[derive(Debug, Clone)]
pub struct Override {
    pub path: String,
    pub source: String,
}

/// A configured environment for one base distro and install type.
pub struct Renderer {
    env: Environment<'static>,
    variables: Value,
    /// The template every image is rendered through when overrides are given.
    entry_override: Option<String>,
    pip_args: Vec<String>,
    display_paths: Arc<BTreeMap<String, String>>,
}

impl Renderer {
    pub fn new(
        tree: &Tree,
        variables: &Variables,
        repos: Option<Repos>,
        overrides: &[Override],
        undefined: UndefinedMode,
    ) -> Renderer {
        let mut sources: BTreeMap<String, String> = tree
            .templates()
            .map(|(name, source)| (name.to_string(), source.to_string()))
            .collect();
        let mut display_paths: BTreeMap<String, String> = sources
            .keys()
            .map(|name| (name.clone(), tree.display_path(name)))
            .collect();
        // Several overrides form a chain: each later file extends the one before it, so a block
        // set by a later file wins and `super()` reaches the earlier one.
        let mut previous: Option<String> = None;
        for file in overrides {
            let name = format!("override:{}", file.path);
            let source = match &previous {
                Some(parent) => chain_extends(&file.source, parent),
                None => file.source.clone(),
            };
            sources.insert(name.clone(), source);
            display_paths.insert(name.clone(), file.path.clone());
            previous = Some(name);
        }

        let mut env = Environment::new();
        env.set_debug(true);
        env.set_undefined_behavior(match undefined {
            UndefinedMode::Strict => UndefinedBehavior::Strict,
            UndefinedMode::Lenient => UndefinedBehavior::Lenient,
        });
        let sources = Arc::new(sources);
        // Jinja2's FileSystemLoader loads any file of the tree: kolla 20's rabbitmq imports
        // macros from `rabbitmq_packages_rpm.<distro>`, a file of the image's folder.
        let other_files: BTreeMap<String, std::path::PathBuf> = tree
            .images
            .iter()
            .flat_map(|i| {
                i.context_files
                    .iter()
                    .map(move |f| format!("{}/{f}", i.dir))
            })
            .filter_map(|rel| tree.file(&rel).map(|p| (rel.clone(), p.to_path_buf())))
            .collect();
        env.set_loader(move |name| {
            Ok(match lookup(&sources, name) {
                Some(source) => Some(source.to_string()),
                None => other_files
                    .get(name)
                    .and_then(|path| std::fs::read_to_string(path).ok()),
            })
        });
        // Python's str/list/dict methods (`.split()`, `.startswith()`, `.items()`...), as Jinja2.
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        // Jinja2 prints values with Python's str(): `True`, `None`, `['a', 1]`.
        env.set_formatter(|out, state, value| match value.kind() {
            ValueKind::Bool | ValueKind::None | ValueKind::Seq | ValueKind::Map => out
                .write_str(&py_str(value))
                .map_err(|e| minijinja::Error::new(ErrorKind::WriteFailure, e.to_string())),
            _ => minijinja::escape_formatter(out, state, value),
        });
        env.add_filter("customizable", customizable);
        env.add_function("debian_package_install", debian_package_install);
        env.add_function("raise_error", raise_error);
        let repos = repos.map(Arc::new);
        let cleanup = repos.clone();
        env.add_function(
            "handle_repos",
            move |state: &State, names: Value, mode: Option<String>| {
                handle_repos(state, repos.as_deref(), names, mode.as_deref())
            },
        );
        env.add_function("cleanup_repos", move |state: &State| {
            cleanup_repos(state, cleanup.as_deref())
        });
        Renderer {
            env,
            variables: variables.to_value(),
            entry_override: previous,
            pip_args: variables.pip_args.clone(),
            display_paths: Arc::new(display_paths),
        }
    }

    /// Renders one image's Dockerfile.
    pub fn render(&self, image: &ImageSource) -> Result<String, Box<TemplateError>> {
        let entry = self.entry_override.as_deref().unwrap_or(&image.template);
        let context = minijinja::context! {
            image_name => image.name.as_str(),
            parent_template => image.template.as_str(),
            ..self.variables.clone()
        };
        self.env
            .get_template(entry)
            .and_then(|template| template.render(context))
            .map(|text| insert_after_first_from(text, &self.pip_args))
            .map_err(|err| {
                Box::new(TemplateError::from_minijinja(
                    Some(&image.name),
                    &err,
                    |name| {
                        self.display_paths
                            .get(name)
                            .or_else(|| self.display_paths.get(&format!("base/{name}")))
                            .cloned()
                            .unwrap_or_else(|| name.to_string())
                    },
                ))
            })
    }

    /// Renders images in parallel; the results keep the input order.
    pub fn render_all<'a>(
        &self,
        images: &[&'a ImageSource],
    ) -> Vec<(&'a ImageSource, Result<String, Box<TemplateError>>)> {
        images
            .par_iter()
            .map(|image| (*image, self.render(image)))
            .collect()
    }
}

/// kolla's pip index `ARG`s: inserted after the first line starting with `FROM` + whitespace.
fn insert_after_first_from(text: String, lines: &[String]) -> String {
    if lines.is_empty() {
        return text;
    }
    // compiled once for every image
    static FROM: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let from = FROM.get_or_init(|| regex::Regex::new(r"(?i)^FROM\s").expect("valid regex"));
    let mut out: Vec<&str> = text.split('\n').collect();
    if let Some(i) = out.iter().position(|line| from.is_match(line)) {
        for (k, line) in lines.iter().enumerate() {
            out.insert(i + 1 + k, line);
        }
    }
    out.join("\n")
}

fn lookup<'a>(sources: &'a BTreeMap<String, String>, name: &str) -> Option<&'a str> {
    sources
        .get(name)
        .or_else(|| sources.get(&format!("base/{name}")))
        .map(String::as_str)
}

/// Points a later override's `{% extends parent_template %}` at the override before it.
fn chain_extends(source: &str, parent: &str) -> String {
    let re = regex::Regex::new(r"\{%-?\s*extends\s+parent_template\s*-?%\}").expect("valid regex");
    re.replace(source, format!("{{% extends {parent:?} %}}").as_str())
        .into_owned()
}

/// `list | customizable("packages")`: applies `<image>_<kind>_override`, `_append` and `_remove`
/// set by a template override. An undefined list passes through.
fn customizable(state: &State, list: Value, kind: String) -> Result<Value, minijinja::Error> {
    if list.is_undefined() {
        return Ok(list);
    }
    let image = state
        .lookup("image_name")
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
        .replace('-', "_");
    let var = |suffix: &str| {
        state
            .lookup(&format!("{image}_{kind}_{suffix}"))
            .filter(|v| !v.is_undefined() && !v.is_none())
    };
    if let Some(replacement) = var("override") {
        return Ok(replacement);
    }
    let mut items: Vec<Value> = list.try_iter()?.collect();
    if let Some(append) = var("append") {
        items.extend(append.try_iter()?);
    }
    if let Some(remove) = var("remove") {
        let remove: Vec<Value> = remove.try_iter()?.collect();
        items.retain(|item| !remove.contains(item));
    }
    Ok(Value::from(items))
}

/// The apt command line installing `packages`; `http(s)://…deb` entries are fetched and
/// installed with dpkg.
fn debian_package_install(
    packages: Value,
    clean: Option<bool>,
    kwargs: Kwargs,
) -> Result<String, minijinja::Error> {
    let clean = match clean {
        Some(clean) => clean,
        None => kwargs
            .get::<Option<bool>>("clean_package_cache")?
            .unwrap_or(true),
    };
    kwargs.assert_all_used()?;
    let mut names = Vec::new();
    let mut urls = Vec::new();
    for package in packages.try_iter()? {
        let package = package.to_string();
        if package.starts_with("http") {
            urls.push(package);
        } else {
            names.push(package);
        }
    }
    let mut commands = Vec::new();
    if !names.is_empty() {
        commands.push("apt-get --error-on=any update".to_string());
        commands.push(format!(
            "apt-get -y install --no-install-recommends {}",
            names.join(" ")
        ));
        if clean {
            commands.push("apt-get clean".to_string());
            commands.push("rm -rf /var/lib/apt/lists/*".to_string());
        }
    }
    for url in urls {
        let file = url.rsplit('/').next().unwrap_or(&url).to_string();
        commands.push(format!("curl --location {url} -o {file}"));
        commands.push(format!("dpkg -i {file}"));
        commands.push(format!("rm -rf {file}"));
    }
    Ok(commands.join(" && "))
}

fn raise_error(message: String) -> Result<Value, minijinja::Error> {
    Err(minijinja::Error::new(ErrorKind::InvalidOperation, message))
}

fn handle_repos(
    state: &State,
    repos: Option<&Repos>,
    names: Value,
    mode: Option<&str>,
) -> Result<String, minijinja::Error> {
    let invalid = |message: String| minijinja::Error::new(ErrorKind::InvalidOperation, message);
    let invalid_repos = |e: crate::tree::repos::ReposError| invalid(e.0);
    // A list built with `+` is a lazy sequence in minijinja: accept anything list-like.
    if !matches!(
        names.kind(),
        minijinja::value::ValueKind::Seq | minijinja::value::ValueKind::Iterable
    ) {
        return Err(invalid(
            "First argument should be a list of repositories".into(),
        ));
    }
    let mode = match mode.unwrap_or("enable") {
        "enable" => Mode::Enable,
        "disable" => Mode::Disable,
        other => {
            return Err(invalid(format!(
                "mode must be `enable` or `disable`, not `{other}`"
            )));
        }
    };
    let repos = repos
        .ok_or_else(|| invalid("handle_repos() needs a `repos.yaml` in the tree's base/".into()))?;
    let [package_type, distro, arch, codename] = target_of(state)?;
    let names: Vec<String> = names.try_iter()?.map(|v| v.to_string()).collect();
    let target = Target {
        package_type: &package_type,
        distro: &distro,
        arch: &arch,
        release_codename: &codename,
    };
    repos.handle(target, &names, mode).map_err(invalid_repos)
}

fn target_of(state: &State) -> Result<[String; 4], minijinja::Error> {
    let var = |name: &str| {
        state.lookup(name).map(|v| v.to_string()).ok_or_else(|| {
            minijinja::Error::new(
                ErrorKind::InvalidOperation,
                format!("handle_repos() needs the variable `{name}`"),
            )
        })
    };
    Ok([
        var("base_package_type")?,
        var("base_distro")?,
        var("base_arch")?,
        var("openstack_release_codename")?,
    ])
}

fn cleanup_repos(state: &State, repos: Option<&Repos>) -> Result<String, minijinja::Error> {
    let Some(repos) = repos else {
        return Ok(String::new());
    };
    let [package_type, distro, arch, codename] = target_of(state)?;
    Ok(repos.cleanup(Target {
        package_type: &package_type,
        distro: &distro,
        arch: &arch,
        release_codename: &codename,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::common::types::{BaseDistro, InstallType};

    fn naming() -> Naming {
        Naming {
            base: BaseDistro::Debian,
            base_image: "debian".into(),
            base_tag: "bookworm".into(),
            base_arch: "x86_64".into(),
            install_type: InstallType::Binary,
            registry: None,
            namespace: "kolla".into(),
            image_prefix: "debian-binary-".into(),
            tag: "2024.1".into(),
            openstack_release: "2024.1".into(),
            openstack_release_codename: "caracal".into(),
            maintainer: "me".into(),
        }
    }

    /// A tree of `files` written to a temp dir, loaded, and `image` rendered with `overrides`
    /// in `mode`; returns the output or the error.
    fn render_in(
        mode: UndefinedMode,
        files: &[(&str, &str)],
        overrides: &[(&str, &str)],
        image: &str,
    ) -> Result<String, Box<TemplateError>> {
        let dir = tempfile::tempdir().unwrap();
        for (rel, text) in files {
            let path = dir.path().join(rel);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        let tree = Tree::load(dir.path(), &[]).unwrap();
        let variables = Variables {
            naming: naming(),
            users: Users::parse("[keystone]\nuid = 42425\ngid = 42425\n").unwrap(),
            clean_package_cache: true,
            use_dumb_init: true,
            docker_healthchecks: true,
            kolla_version: "test".into(),
            supported_distro_name: "Debian GNU/Linux".into(),
            build_date: false,
            repos_yaml: String::new(),
            rpm_setup: Vec::new(),
            pip_args: Vec::new(),
            ca_certificates: Vec::new(),
            patches_path: None,
            env: BTreeMap::new(),
        };
        let overrides: Vec<Override> = overrides
            .iter()
            .map(|(p, s)| Override {
                path: p.to_string(),
                source: s.to_string(),
            })
            .collect();
        let renderer = Renderer::new(&tree, &variables, None, &overrides, mode);
        renderer.render(tree.image(image).unwrap())
    }

    /// `render_in` with undefined variables as errors.
    fn render(
        files: &[(&str, &str)],
        overrides: &[(&str, &str)],
        image: &str,
    ) -> Result<String, Box<TemplateError>> {
        render_in(UndefinedMode::Strict, files, overrides, image)
    }

    /// The image `image` whose Dockerfile.j2 is `template`, over `base`, rendered.
    fn render_image(image: &str, template: &str) -> Result<String, Box<TemplateError>> {
        let path = format!("images/{image}/Dockerfile.j2");
        render(&[BASE, (&path, template)], &[], image)
    }

    const BASE: (&str, &str) = (
        "base/Dockerfile.j2",
        "FROM {{ base_image }}:{{ base_distro_tag }}\n",
    );
    const MACROS: (&str, &str) = (
        "base/macros.j2",
        "{% macro install_packages(packages, clean=clean_package_cache) %}{% if packages %}RUN {{ debian_package_install(packages, clean) }}{% endif %}{% endmacro %}",
    );

    #[test]
    fn customizable_applies_append_remove_and_override_from_an_override_file() {
        let image = (
            "images/keystone/Dockerfile.j2",
            "FROM kolla/debian-binary-base:2024.1\n{% import \"macros.j2\" as macros with context %}\n\
             {% block keystone_header %}{% endblock %}\n\
             {% set keystone_packages = ['keystone', 'apache2'] %}\n\
             {{ macros.install_packages(keystone_packages | customizable('packages')) }}\n",
        );
        let ovr = "{% extends parent_template %}\n{% set keystone_packages_append = ['vim'] %}\n\
                   {% set keystone_packages_remove = ['apache2'] %}\n{% block keystone_header %}RUN echo hi{% endblock %}\n";
        let out = render(&[BASE, MACROS, image], &[("ovr.j2", ovr)], "keystone").unwrap();
        assert!(out.contains("RUN echo hi"), "{out}");
        assert!(
            out.contains(
                "apt-get -y install --no-install-recommends keystone vim && apt-get clean"
            ),
            "{out}"
        );
        let ovr2 =
            "{% extends parent_template %}\n{% set keystone_packages_override = ['nginx'] %}\n";
        let out = render(
            &[BASE, MACROS, image],
            &[("a.j2", ovr), ("b.j2", ovr2)],
            "keystone",
        )
        .unwrap();
        assert!(out.contains("--no-install-recommends nginx &&"), "{out}");
        assert!(
            out.contains("RUN echo hi"),
            "the earlier override's block stays: {out}"
        );
    }

    #[test]
    fn later_override_block_wins_and_super_reaches_the_earlier() {
        let image = (
            "images/nova-api/Dockerfile.j2",
            "FROM x\n{% block nova_api_footer %}{% endblock %}\n",
        );
        let first = "{% extends parent_template %}{% block nova_api_footer %}RUN one{% endblock %}";
        let second = "{% extends parent_template %}{% block nova_api_footer %}{{ super() }}\nRUN two{% endblock %}";
        let out = render(
            &[BASE, image],
            &[("1.j2", first), ("2.j2", second)],
            "nova-api",
        )
        .unwrap();
        assert_eq!(out, "FROM x\nRUN one\nRUN two");
    }

    #[test]
    fn undefined_variable_points_at_file_line_and_column() {
        let err =
            render_image("glance-api", "FROM x\nRUN echo {{ glance_versoin }}\n").unwrap_err();
        assert_eq!(err.image.as_deref(), Some("glance-api"));
        assert!(
            err.path.ends_with("images/glance-api/Dockerfile.j2"),
            "{}",
            err.path
        );
        assert_eq!((err.line, err.column), (Some(2), Some(13)));
        assert!(err.message.contains("`glance_versoin`"), "{}", err.message);
        let shown = err.to_string();
        assert!(
            shown.contains("2 | RUN echo {{ glance_versoin }}"),
            "{shown}"
        );
        assert!(shown.contains("  |             ^^^^^^^^^^^^^^"), "{shown}");
    }

    #[test]
    fn syntax_error_in_a_macro_file_names_that_file() {
        let macros = (
            "base/macros.j2",
            "{% macro x() %}\n{% if %}{% endif %}{% endmacro %}",
        );
        let image = (
            "images/cron/Dockerfile.j2",
            "FROM x\n{% import \"macros.j2\" as macros with context %}\n",
        );
        let err = render(&[BASE, macros, image], &[], "cron").unwrap_err();
        assert!(err.path.ends_with("base/macros.j2"), "{}", err.path);
        assert_eq!(err.line, Some(2));
        assert!(err.message.starts_with("syntax error"), "{}", err.message);
    }

    #[test]
    fn errors_of_the_template_functions_say_what_is_wrong() {
        for (image, template, message) in [
            // raise_error stops rendering with the message
            (
                "bad",
                "FROM x\n{{ raise_error('user nobody is unknown') }}\n",
                "user nobody is unknown",
            ),
            // handle_repos without a list is an error
            (
                "x",
                "{{ handle_repos('epel', 'enable') }}",
                "list of repositories",
            ),
            // handle_repos takes a list built with `+`: with no repos.yaml, the error must be
            // about that, not about the argument's type
            (
                "x",
                "{% set repos = ['a'] %}{% set repos = repos + ['b'] %}{{ handle_repos(repos, 'enable') }}",
                "repos.yaml",
            ),
        ] {
            let err = render_image(image, template).unwrap_err();
            assert!(err.message.contains(message), "{template}: {}", err.message);
        }
    }

    #[test]
    fn users_and_context_variables_are_visible_in_imported_macros() {
        let macros = (
            "base/macros.j2",
            "{% macro uid(name) %}{{ users[name].uid }}:{{ image_prefix }}{% endmacro %}",
        );
        let image = (
            "images/keystone/Dockerfile.j2",
            "{% import \"macros.j2\" as macros with context %}{{ macros.uid('keystone') }}",
        );
        assert_eq!(
            render(&[BASE, macros, image], &[], "keystone").unwrap(),
            "42425:debian-binary-"
        );
    }

    #[test]
    fn templates_render_as_jinja2_and_kolla_do() {
        for (template, expected) in [
            // debian_package_install splits URLs and honours `clean`
            (
                "{{ debian_package_install(['curl', 'https://example.org/a/pkg.deb'], false) }}",
                "apt-get --error-on=any update && apt-get -y install --no-install-recommends curl && \
                 curl --location https://example.org/a/pkg.deb -o pkg.deb && dpkg -i pkg.deb && rm -rf pkg.deb",
            ),
            // Python string and dict methods work as in Jinja2
            (
                "{{ 'a,b'.split(',') | join(' ') }} {{ 'abc'.startswith('ab') }} {{ 'X'.lower() }} \
                 {% for k, v in {'k': 1}.items() %}{{ k }}={{ v }}{% endfor %}",
                "a b True x k=1",
            ),
            // kolla's grafana idiom: list repeat and printf-style format
            (
                "{% set p = ['a', 'b'] %}RUN {{ (['install %s'] * p | length) | join(' && ') | format(*p) }}",
                "RUN install a && install b",
            ),
            // the template's trailing newline is dropped as Jinja2 does
            ("FROM x\n\n", "FROM x\n"),
            // cleanup_repos without build-only repos is empty
            ("[{{ cleanup_repos() }}]", "[]"),
            // values print as Python's str() as in Jinja2
            (
                "{{ true }} {{ false }} {{ none }} {{ ['a', 1, \"it's\"] }} {{ {'k': 'v'} }} {{ 'plain' }} {{ 2 }}",
                "True False None ['a', 1, \"it's\"] {'k': 'v'} plain 2",
            ),
        ] {
            assert_eq!(render_image("x", template).unwrap(), expected, "{template}");
        }
    }

    #[test]
    fn pip_args_go_right_after_the_first_from() {
        assert_eq!(
            insert_after_first_from(
                "# c\nFROM x\nRUN a\nFROM y".into(),
                &["ARG PIP_INDEX_URL".into()]
            ),
            "# c\nFROM x\nARG PIP_INDEX_URL\nRUN a\nFROM y"
        );
        assert_eq!(
            insert_after_first_from("RUN a".into(), &["ARG X".into()]),
            "RUN a"
        );
    }

    #[test]
    fn build_date_is_the_utc_day_as_kolla_22_prints_it() {
        use std::time::{Duration, UNIX_EPOCH};
        assert_eq!(build_date(UNIX_EPOCH), "19700101");
        // 2024-02-29 23:59:59 and the next second
        assert_eq!(
            build_date(UNIX_EPOCH + Duration::from_secs(1_709_251_199)),
            "20240229"
        );
        assert_eq!(
            build_date(UNIX_EPOCH + Duration::from_secs(1_709_251_200)),
            "20240301"
        );
        assert_eq!(
            build_date(UNIX_EPOCH + Duration::from_secs(1_795_392_000)),
            "20261123"
        );
    }

    #[test]
    fn lenient_undefined_prints_empty_and_default_filter_applies() {
        let image = (
            "images/x/Dockerfile.j2",
            "[{{ nothing }}]{% for x in nothing %}x{% endfor %}{{ nothing | default('d') }}{% if nothing is defined %}!{% endif %}",
        );
        assert_eq!(
            render_in(UndefinedMode::Lenient, &[BASE, image], &[], "x").unwrap(),
            "[]d"
        );
    }
}

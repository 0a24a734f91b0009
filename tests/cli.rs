//! The CLI's behaviour on small fixture trees: selection, listings, template-only output and the
//! errors a user sees.

use pretty_assertions::assert_eq;

use crate::support::{Test, files_below};

#[test]
fn list_images_selects_ancestors_in_dependency_order() {
    let run = Test::small_tree()
        .args(["--list-images", "^keystone$"])
        .run()
        .success();
    assert_eq!(
        run.stdout(),
        "1 : base\n2 : openstack-base\n3 : keystone-base\n4 : keystone\n"
    );
}

#[test]
fn profile_selects_like_its_regexes() {
    let run = Test::small_tree()
        .args(["--list-images", "-p", "gate"])
        .run()
        .success();
    assert_eq!(
        run.stdout(),
        "1 : base\n2 : openstack-base\n3 : keystone-base\n4 : keystone\n"
    );
}

#[test]
fn skip_parents_keeps_only_what_was_asked() {
    let run = Test::small_tree()
        .args(["--list-images", "--skip-parents", "keystone"])
        .run()
        .success();
    assert_eq!(run.stdout(), "1 : keystone-base\n2 : keystone\n");
}

#[test]
fn list_dependencies_prints_the_json_tree() {
    let run = Test::small_tree()
        .args(["--list-dependencies"])
        .run()
        .success();
    let json: serde_json::Value = serde_json::from_str(&run.stdout()).unwrap();
    assert_eq!(
        json,
        serde_json::json!({"base": ["cron", {"openstack-base": [{"keystone-base": ["keystone"]}]}]})
    );
}

#[test]
fn save_dependency_writes_dot() {
    let test = Test::small_tree();
    test.run_ok(&["--save-dependency", "deps.dot", "cron"]);
    assert_eq!(
        test.read("deps.dot"),
        "digraph {\n    rankdir=LR;\n    node [shape=box];\n    \"base\";\n    \"cron\";\n    \"base\" -> \"cron\";\n}\n"
    );
}

#[test]
fn template_only_writes_rendered_tree_with_context_files() {
    let test = Test::small_tree();
    test.run_ok(&[
        "--template-only",
        "--work-dir",
        "out",
        "-b",
        "ubuntu",
        "-t",
        "source",
        "^keystone$",
    ]);
    let files = files_below(&test.path().join("out/docker"));
    let names: Vec<_> = files
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        [
            "base/Dockerfile",
            "base/start.sh",
            "images/keystone/keystone/Dockerfile",
            "images/keystone/keystone/extend_start.sh",
            "images/keystone/keystone-base/Dockerfile",
            "images/openstack-base/Dockerfile",
        ]
    );
    assert_eq!(
        test.read("out/docker/base/Dockerfile"),
        "FROM ubuntu:24.04\n\n\nRUN echo base"
    );
    assert_eq!(
        test.read("out/docker/images/keystone/keystone/Dockerfile"),
        "FROM kolla/ubuntu-source-keystone-base:2025.1\n"
    );
}

#[test]
fn template_override_and_customizable_apply_to_every_image() {
    let test = Test::small_tree();
    test.write(
        "override.j2",
        "{% extends parent_template %}\n{% set keystone_base_packages_append = ['ldap-utils'] %}\n\
         {% block keystone_base_header %}RUN echo header{% endblock %}\n\
         {% block keystone_footer %}RUN echo footer{% endblock %}\n",
    );
    test.run_ok(&[
        "--template-only",
        "--work-dir",
        "out",
        "--template-override",
        "override.j2",
        "keystone",
    ]);
    let base = test.read("out/docker/images/keystone/keystone-base/Dockerfile");
    assert!(base.contains("RUN echo header"), "{base}");
    assert!(
        base.contains("--no-install-recommends keystone ldap-utils &&"),
        "{base}"
    );
    let leaf = test.read("out/docker/images/keystone/keystone/Dockerfile");
    assert!(leaf.ends_with("RUN echo footer"), "{leaf}");
}

#[test]
fn docker_dir_adds_images_and_shadows_files() {
    let mut test = Test::small_tree();
    test.write(
        "extra/images/cron/Dockerfile.j2",
        "FROM {{ namespace }}/{{ image_prefix }}base:{{ tag }}\nRUN echo custom-cron\n",
    );
    test.write(
        "extra/custom/Dockerfile.j2",
        "FROM {{ namespace }}/{{ image_prefix }}cron:{{ tag }}\n",
    );
    let run = test
        .args(["--list-images", "-D", "extra", "custom"])
        .run()
        .success();
    assert_eq!(run.stdout(), "1 : base\n2 : cron\n3 : custom\n");
    let test2 = Test::small_tree();
    test2.write(
        "extra/images/cron/Dockerfile.j2",
        "FROM {{ namespace }}/{{ image_prefix }}base:{{ tag }}\nRUN echo custom-cron\n",
    );
    test2.run_ok(&[
        "--template-only",
        "--work-dir",
        "out",
        "-D",
        "extra",
        "cron",
    ]);
    assert!(
        test2
            .read("out/docker/images/cron/Dockerfile")
            .contains("custom-cron")
    );
}

#[test]
fn images_dir_accepts_a_kolla_layout_tree() {
    let test = Test::new();
    test.write(
        "docker/base/Dockerfile.j2",
        "FROM {{ base_image }}:{{ base_distro_tag }}\n",
    );
    test.write(
        "docker/macros.j2",
        "{% macro hi() %}RUN echo hi{% endmacro %}",
    );
    test.write("docker/nova/nova-base/Dockerfile.j2", "FROM {{ namespace }}/{{ image_prefix }}base:{{ tag }}\n{% import \"macros.j2\" as macros with context %}{{ macros.hi() }}\n");
    test.run_ok(&[
        "--images-dir",
        "docker",
        "--image-name-prefix",
        "",
        "--template-only",
        "--work-dir",
        "out",
    ]);
    assert_eq!(
        test.read("out/docker/nova/nova-base/Dockerfile"),
        // no kolla installation beside it: the newest kolla's defaults (src/compat/kolla.toml)
        "FROM kolla/base:2026.2-rocky-10\nRUN echo hi"
    );
}

#[test]
fn config_file_sets_defaults_and_flags_override_it() {
    let test = Test::small_tree();
    test.write(
        "my.toml",
        "namespace = \"acme\"\ntag = \"nightly\"\nimages-dir = \".\"\n",
    );
    test.run_ok(&[
        "--config-file",
        "my.toml",
        "--template-only",
        "--work-dir",
        "out",
        "^keystone$",
    ]);
    assert_eq!(
        test.read("out/docker/images/keystone/keystone/Dockerfile"),
        "FROM acme/debian-binary-keystone-base:nightly\n"
    );
    test.run_ok(&[
        "--config-file",
        "my.toml",
        "--tag",
        "x1",
        "--template-only",
        "--work-dir",
        "out",
        "^keystone$",
    ]);
    assert_eq!(
        test.read("out/docker/images/keystone/keystone/Dockerfile"),
        "FROM acme/debian-binary-keystone-base:x1\n"
    );
}

#[test]
fn unknown_config_key_names_key_file_and_line() {
    let mut test = Test::small_tree();
    test.write("bad.toml", "base = \"debian\"\n\nnamespce = \"acme\"\n");
    let run = test
        .args(["--config-file", "bad.toml", "--list-images"])
        .run()
        .failure();
    let err = run.stderr();
    assert!(
        err.contains("bad.toml") && err.contains("line 3") && err.contains("namespce"),
        "{err}"
    );
}

#[test]
fn undefined_variable_shows_file_line_caret_and_writes_nothing() {
    let mut test = Test::small_tree();
    test.write(
        "images/cron/Dockerfile.j2",
        "FROM {{ namespace }}/{{ image_prefix }}base:{{ tag }}\nRUN echo {{ cron_versoin }}\n",
    );
    let run = test
        .args(["--template-only", "--work-dir", "out"])
        .run()
        .failure();
    let err = run.stderr();
    assert!(
        err.contains("error rendering image `cron`: undefined variable `cron_versoin`"),
        "{err}"
    );
    assert!(err.contains("images/cron/Dockerfile.j2:2:13"), "{err}");
    assert!(
        err.contains("2 | RUN echo {{ cron_versoin }}\n  |             ^^^^^^^^^^^^"),
        "{err}"
    );
    assert!(!test.exists("out/docker"), "nothing is written on error");
}

#[test]
fn lenient_mode_renders_undefined_as_empty() {
    let test = Test::small_tree();
    test.write(
        "images/cron/Dockerfile.j2",
        "FROM {{ namespace }}/{{ image_prefix }}base:{{ tag }}\nRUN echo [{{ cron_versoin }}]\n",
    );
    test.run_ok(&[
        "--undefined",
        "lenient",
        "--template-only",
        "--work-dir",
        "out",
        "^cron$",
    ]);
    assert!(
        test.read("out/docker/images/cron/Dockerfile")
            .ends_with("RUN echo []")
    );
}

#[test]
fn syntax_error_shows_file_and_line() {
    let mut test = Test::small_tree();
    test.write(
        "base/macros.j2",
        "{% macro install_packages(packages) %}\n{% if packages %}\n{% endmacro %}\n",
    );
    let run = test.args(["--list-images"]).run().failure();
    let err = run.stderr();
    assert!(err.contains("syntax error"), "{err}");
    assert!(err.contains("base/macros.j2:3"), "{err}");
}

#[test]
fn failed_render_keeps_the_previous_output() {
    let mut test = Test::small_tree();
    test.run_ok(&["--template-only", "--work-dir", "out", "^cron$"]);
    test.write("images/cron/Dockerfile.j2", "FROM {% if %}\n");
    test.args(["--template-only", "--work-dir", "out"])
        .run()
        .failure();
    assert!(
        test.read("out/docker/images/cron/Dockerfile")
            .starts_with("FROM kolla/")
    );
}

#[test]
fn nothing_matched_is_an_error() {
    let run = Test::small_tree()
        .args(["--list-images", "kestone"])
        .run()
        .failure();
    assert!(
        run.stderr()
            .contains("no image matches `kestone`; did you mean `keystone`?"),
        "{}",
        run.stderr()
    );
}

#[test]
fn unknown_profile_lists_the_known_ones() {
    let run = Test::small_tree()
        .args(["--list-images", "-p", "nope"])
        .run()
        .failure();
    assert!(
        run.stderr()
            .contains("unknown profile `nope`; known profiles: gate"),
        "{}",
        run.stderr()
    );
}

#[test]
fn bad_base_lists_valid_values() {
    let out = Test::small_tree()
        .args(["--list-images", "--base", "arch"])
        .run();
    assert_eq!(out.0.status.code(), Some(2), "clap usage errors exit 2");
    let err = out.stderr();
    assert!(
        err.contains("centos")
            && err.contains("rocky")
            && err.contains("debian")
            && err.contains("ubuntu"),
        "{err}"
    );
}

#[test]
fn missing_tree_says_where_it_looked() {
    let mut test = Test::new();
    let run = test
        .args(["--images-dir", "nowhere", "--list-images"])
        .run()
        .failure();
    assert!(
        run.stderr().contains("nowhere") && run.stderr().contains("no such directory"),
        "{}",
        run.stderr()
    );
}

#[test]
fn unknown_parent_and_cycle_name_the_images() {
    let mut test = Test::small_tree();
    test.write(
        "images/cron/Dockerfile.j2",
        "FROM {{ namespace }}/{{ image_prefix }}bsae:{{ tag }}\n",
    );
    let err = test.args(["--list-images"]).run().failure().stderr();
    assert!(
        err.contains("image `cron` is built FROM `kolla/debian-binary-bsae:2025.1`"),
        "{err}"
    );
    assert!(err.contains("did you mean `base`?"), "{err}");

    let mut test = Test::small_tree();
    test.write(
        "images/openstack-base/Dockerfile.j2",
        "FROM {{ namespace }}/{{ image_prefix }}keystone:{{ tag }}\n",
    );
    let err = test.args(["--list-images"]).run().failure().stderr();
    assert!(
        err.contains("dependency cycle") && err.contains("keystone -> openstack-base"),
        "{err}"
    );
}

#[test]
fn unbuildable_images_and_descendants_are_excluded_unless_enabled() {
    let mut test = Test::small_tree();
    test.write(
        "images/unbuildable.toml",
        "\"debian+source\" = [\"keystone-base\"]\n",
    );
    let run = test.args(["--list-images", "-t", "source"]).run().success();
    assert_eq!(run.stdout(), "1 : base\n2 : cron\n3 : openstack-base\n");
    let mut test = Test::small_tree();
    test.write(
        "images/unbuildable.toml",
        "\"debian+source\" = [\"keystone-base\"]\n",
    );
    let run = test
        .args(["--list-images", "-t", "source", "--enable-unbuildable"])
        .run()
        .success();
    assert!(run.stdout().contains("keystone"), "{}", run.stdout());
}

#[test]
fn help_teaches_the_flags() {
    let run = Test::new().args(["--help"]).run().success();
    let help = run.stdout();
    for flag in [
        "--base",
        "--install-type",
        "--profile",
        "--template-only",
        "--docker-dir",
        "--template-override",
        "--list-dependencies",
        "Examples:",
    ] {
        assert!(help.contains(flag), "--help lacks {flag}");
    }
}

impl Test {
    /// Runs with `args` (the test's own args are not used) and expects success.
    #[track_caller]
    fn run_ok(&self, args: &[&str]) {
        let output = std::process::Command::new(crate::support::BIN)
            .args(args)
            .current_dir(self.path())
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "kolla-build {args:?} failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

#[test]
fn engine_down_is_one_clear_error_before_any_work() {
    let mut test = Test::small_tree();
    let run = test
        .args([
            "--engine-url",
            "unix:///nonexistent/docker.sock",
            "--logs-dir",
            "logs",
            "cron",
        ])
        .run()
        .failure();
    let err = run.stderr();
    assert!(
        err.starts_with(
            "error: cannot reach the container engine at unix:///nonexistent/docker.sock"
        ),
        "{err}"
    );
    assert!(
        err.contains("hint:") && err.contains("setup-engine.sh"),
        "{err}"
    );
    assert!(!test.exists("logs"), "nothing was started");
}

#[test]
fn several_engines_need_a_registry_and_each_must_answer_before_any_work() {
    let mut test = Test::small_tree();
    let run = test
        .args([
            "--engine",
            "unix:///nonexistent/a.sock",
            "--engine",
            "unix:///nonexistent/b.sock",
            "cron",
        ])
        .run()
        .failure();
    let err = run.stderr();
    assert!(
        err.starts_with("error: invalid value for `registry`: 2 engines (`--engine`)")
            && err.contains("give `--registry HOST:PORT`"),
        "{err}"
    );

    let mut test = Test::small_tree();
    let run = test
        .args([
            "--registry",
            "127.0.0.1:4000",
            "--engine",
            "unix:///nonexistent/a.sock",
            "--engine",
            "unix:///nonexistent/b.sock",
            "--logs-dir",
            "logs",
            "cron",
        ])
        .run()
        .failure();
    let err = run.stderr();
    assert!(
        err.starts_with("error: cannot reach the container engine at unix:///nonexistent/"),
        "{err}"
    );
    assert!(!test.exists("logs"), "nothing was started");

    let mut test = Test::small_tree();
    let run = test
        .args([
            "--engine",
            "unix:///a.sock",
            "--engine-url",
            "unix:///b.sock",
            "cron",
        ])
        .run()
        .failure();
    assert!(run.stderr().contains("not both"), "{}", run.stderr());
}

/// The settings are checked before any template is rendered: with a broken template in the tree,
/// a mistyped path or a missing flag is what the run reports.
#[test]
fn settings_errors_come_before_template_errors() {
    let broken = |test: &Test| {
        test.write("images/cron/Dockerfile.j2", "FROM {% if %}\n");
    };
    let mut test = Test::small_tree();
    broken(&test);
    let run = test
        .args(["--list-images", "--ca-certificate", "certs/mistyped.crt"])
        .run()
        .failure();
    let err = run.stderr();
    assert!(
        err.starts_with("error: invalid value for `ca-certificate`: `")
            && err.contains("certs/mistyped.crt` is not a readable file"),
        "{err}"
    );
    assert!(!err.contains("syntax error"), "{err}");

    let mut test = Test::small_tree();
    broken(&test);
    let run = test.args(["--template-only"]).run().failure();
    let err = run.stderr();
    assert!(
        err.contains("`--template-only` needs `--work-dir DIR` to write into"),
        "{err}"
    );
    assert!(!err.contains("syntax error"), "{err}");

    let mut test = Test::small_tree();
    broken(&test);
    let run = test.args(["--push", "cron"]).run().failure();
    let err = run.stderr();
    assert!(
        err.contains("`--push` needs `--registry HOST:PORT` to push to"),
        "{err}"
    );
    assert!(!err.contains("syntax error"), "{err}");

    // The selection asked for is checked before rendering too.
    for (args, needle) in [
        (
            &["--list-images", "-p", "nope"][..],
            "unknown profile `nope`; known profiles: gate",
        ),
        (&["--list-images", "cron-(x"][..], "invalid regex `cron-(x`"),
    ] {
        let mut test = Test::small_tree();
        broken(&test);
        let run = test.args(args).run().failure();
        let err = run.stderr();
        assert!(
            err.contains(needle) && !err.contains("syntax error"),
            "{err}"
        );
    }

    // Without the settings' error, the template's is reported.
    let mut test = Test::small_tree();
    broken(&test);
    let run = test.args(["--list-images"]).run().failure();
    assert!(run.stderr().contains("syntax error"), "{}", run.stderr());
}

/// kolla's `apt_sources_list` and `apt_preferences` (here as build.toml keys): the files replace
/// base's own `sources.list` / `apt_preferences` in its context, as kolla copies them over; a
/// missing one is refused before anything renders.
#[test]
fn apt_sources_list_and_preferences_replace_bases_own_files() {
    let mut test = Test::small_tree();
    test.write("base/sources.list", "# the tree's own (empty) list\n")
        .write("base/apt_preferences", "# the tree's own preferences\n")
        .write(
            "site/sources.list",
            "deb http://mirror.example.org/debian trixie main\n",
        )
        .write(
            "site/preferences",
            "Package: *\nPin: origin mirror.example.org\n",
        )
        .write(
            "build.toml",
            "base = \"debian\"\napt-sources-list = \"site/sources.list\"\n\
             apt-preferences = \"site/preferences\"\n",
        );
    test.run_ok(&["--template-only", "--work-dir", "out", "^base$"]);
    assert_eq!(
        test.read("out/docker/base/sources.list"),
        "deb http://mirror.example.org/debian trixie main\n"
    );
    assert_eq!(
        test.read("out/docker/base/apt_preferences"),
        "Package: *\nPin: origin mirror.example.org\n"
    );

    test.write(
        "build.toml",
        "base = \"debian\"\napt-sources-list = \"site/missing.list\"\n",
    );
    let run = test
        .args(["--template-only", "--work-dir", "out2", "^base$"])
        .run()
        .failure();
    let err = run.stderr();
    assert!(
        err.contains("apt_sources_list") && err.contains("site/missing.list"),
        "{err}"
    );
}

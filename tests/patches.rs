//! kolla's `--patches-path` on a small tree, with no engine: `--template-only` writes each
//! image's `patches/` (its series and the files the series lists, or empty), the templates see
//! `patches_path`, and a series naming a missing file is refused before anything is written.

use pretty_assertions::assert_eq;

use crate::support::{Test, files_below};

/// keystone's Dockerfiles rendered into `out/` with the folder of patches `patched_tree` writes.
const WITH_PATCHES: [&str; 6] = [
    "--template-only",
    "--work-dir",
    "out",
    "--patches-path",
    "site-patches",
    "^keystone$",
];

/// The small tree, with keystone's template using `patches_path` as kolla's
/// `kolla_patch_sources` macro does, and a folder of patches for keystone.
fn patched_tree() -> Test {
    let test = Test::small_tree();
    test.write(
        "images/keystone/keystone/Dockerfile.j2",
        "FROM {{ namespace }}/{{ image_prefix }}keystone-base:{{ tag }}\n\
         {% if patches_path %}COPY patches /patches\nRUN kolla_patch\n{% endif %}",
    )
    .write(
        "site-patches/keystone/series",
        "# applied in this order\nfix-a.patch\n\nsub/fix-b.patch\n",
    )
    .write("site-patches/keystone/fix-a.patch", "--- a\n+++ a\n")
    .write("site-patches/keystone/sub/fix-b.patch", "--- b\n+++ b\n")
    .write("site-patches/keystone/not-listed.patch", "left out\n");
    test
}

#[test]
fn template_only_writes_each_images_patches_and_the_copy_lines() {
    let mut test = patched_tree();
    let run = test.args(WITH_PATCHES).run().success();
    let docker = test.path().join("out/docker");
    let keystone: Vec<String> = files_below(&docker.join("images/keystone/keystone"))
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    assert_eq!(
        keystone,
        [
            "Dockerfile",
            "extend_start.sh",
            "patches/fix-a.patch",
            "patches/series",
            "patches/sub/fix-b.patch",
        ]
    );
    assert_eq!(
        test.read("out/docker/images/keystone/keystone/patches/series"),
        "# applied in this order\nfix-a.patch\n\nsub/fix-b.patch\n"
    );
    assert_eq!(
        test.read("out/docker/images/keystone/keystone/patches/sub/fix-b.patch"),
        "--- b\n+++ b\n"
    );
    assert_eq!(
        test.read("out/docker/images/keystone/keystone/Dockerfile"),
        "FROM kolla/debian-binary-keystone-base:2025.1\nCOPY patches /patches\nRUN kolla_patch\n"
    );
    // Every other image gets an empty `patches/`, as kolla makes it.
    for image in [
        "base",
        "images/openstack-base",
        "images/keystone/keystone-base",
    ] {
        let patches = docker.join(image).join("patches");
        assert!(patches.is_dir(), "{}", patches.display());
        assert_eq!(std::fs::read_dir(&patches).unwrap().count(), 0, "{image}");
    }
    // Nothing to warn of: keystone's folder applies.
    assert!(!run.stderr().contains("patches"), "{}", run.stderr());
}

#[test]
fn without_patches_path_no_context_gets_a_patches_folder() {
    let mut test = patched_tree();
    test.args(["--template-only", "--work-dir", "out", "^keystone$"])
        .run()
        .success();
    let files = files_below(&test.path().join("out/docker"));
    assert!(
        files
            .iter()
            .all(|f| !f.to_string_lossy().contains("patches")),
        "{files:?}"
    );
    assert!(!test.path().join("out/docker/base/patches").exists());
    assert_eq!(
        test.read("out/docker/images/keystone/keystone/Dockerfile"),
        "FROM kolla/debian-binary-keystone-base:2025.1\n"
    );
}

#[test]
fn a_series_naming_a_missing_file_is_refused_before_anything_is_written() {
    let mut test = patched_tree();
    test.write(
        "site-patches/keystone/series",
        "fix-a.patch\n# old.patch\nfix-c.patch\n",
    );
    let run = test.args(WITH_PATCHES).run().failure();
    let err = run.stderr();
    let series = test.path().join("site-patches/keystone/series");
    let missing = test.path().join("site-patches/keystone/fix-c.patch");
    assert!(
        err.contains(&format!(
            "{}:3: `fix-c.patch` is listed, but `{}` is not a file",
            series.display(),
            missing.display()
        )),
        "{err}"
    );
    assert!(!test.exists("out/docker"), "{err}");
}

#[test]
fn folders_that_apply_nothing_and_a_missing_patches_path_are_warned_of() {
    let mut test = patched_tree();
    test.write("site-patches/keystne/series", "fix.patch\n")
        .write("site-patches/cron/README", "no series yet\n");
    let run = test.args(WITH_PATCHES).run().success();
    let err = run.stderr();
    let root = test.path().join("site-patches");
    assert!(
        err.contains(&format!(
            "`{}` of `--patches-path` is named after no image of the tree",
            root.join("keystne").display()
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "`{}` has no `series` file",
            root.join("cron").display()
        )),
        "{err}"
    );

    let mut test = patched_tree();
    let run = test
        .args([
            "--template-only",
            "--work-dir",
            "out",
            "--patches-path",
            "no-such-folder",
            "^keystone$",
        ])
        .run()
        .success();
    let err = run.stderr();
    assert!(
        err.contains(&format!(
            "`patches_path` ({}) is not a directory",
            test.path().join("no-such-folder").display()
        )),
        "{err}"
    );
    // Built as kolla builds it then: the lines are rendered, `patches/` is there and empty.
    assert!(
        test.read("out/docker/images/keystone/keystone/Dockerfile")
            .contains("RUN kolla_patch")
    );
    let patches = test
        .path()
        .join("out/docker/images/keystone/keystone/patches");
    assert_eq!(std::fs::read_dir(patches).unwrap().count(), 0);
}

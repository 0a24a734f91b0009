//! The on-disk configuration: `build.toml` (and `--config-file`). Every key is optional here;
//! `settings` merges it under the CLI and over the defaults.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::types::{BaseDistro, InstallType, SummaryFormat, UndefinedMode};

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct FileConfig {
    pub base: Option<BaseDistro>,
    pub base_image: Option<String>,
    pub base_tag: Option<String>,
    pub base_arch: Option<String>,
    pub install_type: Option<InstallType>,
    pub namespace: Option<String>,
    pub registry: Option<String>,
    pub tag: Option<String>,
    pub image_name_prefix: Option<String>,
    pub openstack_release: Option<String>,
    pub openstack_release_codename: Option<String>,
    pub maintainer: Option<String>,
    pub profile: Option<Vec<String>>,
    pub images_dir: Option<PathBuf>,
    pub docker_dir: Option<Vec<PathBuf>>,
    pub template_override: Option<Vec<PathBuf>>,
    pub work_dir: Option<PathBuf>,
    pub enable_unbuildable: Option<bool>,
    pub skip_parents: Option<bool>,
    pub undefined: Option<UndefinedMode>,
    pub clean_package_cache: Option<bool>,
    pub use_dumb_init: Option<bool>,
    pub docker_healthchecks: Option<bool>,
    pub threads: Option<usize>,
    pub engine_url: Option<String>,
    pub pull: Option<bool>,
    pub bootstrap_base: Option<bool>,
    pub bootstrap_mirror: Option<String>,
    pub build_args: Option<BTreeMap<String, String>>,
    pub network_mode: Option<String>,
    pub no_cache: Option<bool>,
    pub keep: Option<bool>,
    pub ca_certificates: Option<Vec<PathBuf>>,
    pub retries: Option<u32>,
    pub push: Option<bool>,
    pub push_threads: Option<usize>,
    pub export: Option<PathBuf>,
    pub export_format: Option<crate::export::ExportFormat>,
    pub timeout: Option<u64>,
    pub skip_existing: Option<bool>,
    pub logs_dir: Option<PathBuf>,
    pub summary_json_file: Option<PathBuf>,
    pub format: Option<SummaryFormat>,
    /// Extra named selections, as kolla's `[profiles]` section: name → regexes.
    pub profiles: Option<BTreeMap<String, Vec<String>>>,
}

impl FileConfig {
    /// Reads and validates a TOML config file; relative paths in it are resolved against its
    /// directory, so a config works from any current directory.
    pub fn load(path: &Path) -> Result<FileConfig> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let mut config = Self::parse(&text).map_err(|message| Error::Config {
            path: path.to_path_buf(),
            message,
        })?;
        let dir = path.parent().unwrap_or(Path::new("."));
        config.resolve_paths(dir);
        Ok(config)
    }

    pub fn parse(text: &str) -> std::result::Result<FileConfig, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    fn resolve_paths(&mut self, dir: &Path) {
        let resolve = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = dir.join(&*p);
            }
        };
        self.images_dir.iter_mut().for_each(resolve);
        self.work_dir.iter_mut().for_each(resolve);
        self.logs_dir.iter_mut().for_each(resolve);
        self.export.iter_mut().for_each(resolve);
        self.summary_json_file.iter_mut().for_each(resolve);
        self.ca_certificates.iter_mut().flatten().for_each(resolve);
        self.docker_dir.iter_mut().flatten().for_each(resolve);
        self.template_override
            .iter_mut()
            .flatten()
            .for_each(resolve);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_key_names_key_and_line() {
        let err = FileConfig::parse("base = \"debian\"\nbsae-tag = \"x\"\n").unwrap_err();
        assert!(err.contains("line 2"), "{err}");
        assert!(err.contains("bsae-tag"), "{err}");
    }

    #[test]
    fn wrong_type_names_key_and_line() {
        let err = FileConfig::parse("\n\nthreads = \"four\"\n").unwrap_err();
        assert!(err.contains("line 3"), "{err}");
        assert!(err.contains("threads") || err.contains("integer"), "{err}");
    }

    #[test]
    fn bad_base_lists_valid_values() {
        let err = FileConfig::parse("base = \"arch\"\n").unwrap_err();
        assert!(err.contains("debian") && err.contains("rocky"), "{err}");
    }

    #[test]
    fn relative_paths_resolve_against_the_file() {
        let mut config = FileConfig::parse("images-dir = \"trees/main\"\n").unwrap();
        config.resolve_paths(Path::new("/etc/kolla"));
        assert_eq!(
            config.images_dir.unwrap(),
            Path::new("/etc/kolla/trees/main")
        );
    }
}

//! Errors a user can act on: each names the file, line or thing at fault and says what to do.

use std::fmt;
use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The exit code of an internal error or a panic: a bug, not a bad input.
pub const INTERNAL_EXIT: u8 = 2;

/// Declares a stage's error type that is one message naming the thing and saying what to do
/// (the caller adds the file it came from).
macro_rules! message_error {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
        #[error("{0}")]
        pub struct $name(pub String);

        impl From<String> for $name {
            fn from(message: String) -> Self {
                Self(message)
            }
        }

        impl From<&str> for $name {
            fn from(message: &str) -> Self {
                Self(message.to_string())
            }
        }

        impl std::ops::Deref for $name {
            type Target = str;

            fn deref(&self) -> &str {
                &self.0
            }
        }
    };
}
pub(crate) use message_error;

/// Why a call to a container engine failed (`engine::Engine`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EngineError {
    #[error(
        "cannot reach the container engine at {url}: {message}\n\
         hint: start it (`scripts/setup-engine.sh` on a bare Debian machine, or `systemctl start docker`), \
         or point `--engine-url`/DOCKER_HOST at a running engine"
    )]
    Unreachable { url: String, message: String },
    /// The engine's address cannot be used as given (an unknown scheme, TLS files missing).
    #[error("the container engine at {url} cannot be used: {message}")]
    Address { url: String, message: String },
    /// The build ran and failed (a RUN step exited non-zero, a COPY source is missing...).
    #[error("{0}")]
    Build(String),
    #[error("engine error: {0}")]
    Api(String),
    #[error("push failed: {0}")]
    Push(String),
    /// A pull the engine could not do, in the engine's words; the caller names the image.
    #[error("{0}")]
    Pull(String),
    /// The image archive stream broke, in the engine's words; the caller says what it was saving.
    #[error("{0}")]
    Save(String),
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read `{path}`: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },

    #[error("cannot write `{path}`: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },

    /// A TOML file that does not parse or has unknown keys / wrong types. The toml error already
    /// carries line, column and a snippet.
    #[error("invalid configuration in `{path}`:\n{message}")]
    Config { path: PathBuf, message: String },

    #[error("{0}")]
    Template(Box<TemplateError>),

    #[error("{count} template(s) failed to render:\n\n{}", .errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Templates {
        count: usize,
        errors: Vec<TemplateError>,
    },

    #[error(
        "no image tree found: looked for `base/Dockerfile.j2` and `images/` in {searched}\n\
         hint: run from a kolla-build checkout, or pass `--images-dir DIR`"
    )]
    NoTree { searched: String },

    #[error("`{path}` is not an image tree: {reason}")]
    BadTree { path: PathBuf, reason: String },

    #[error(
        "image `{name}` is defined twice: `{first}` and `{second}`\nhint: image names are directory names and must be unique across all trees"
    )]
    DuplicateImage {
        name: String,
        first: PathBuf,
        second: PathBuf,
    },

    #[error("image `{image}` is built FROM `{reference}`, which looks like one of ours but no image `{parent}` exists{}", suggestion(.did_you_mean))]
    UnknownParent {
        image: String,
        reference: String,
        parent: String,
        did_you_mean: Option<String>,
    },

    #[error("images form a dependency cycle: {}", .path.join(" -> "))]
    Cycle { path: Vec<String> },

    #[error("image `{image}` has no FROM line in its rendered Dockerfile")]
    NoFrom { image: String },

    #[error("invalid regex `{pattern}`: {message}")]
    BadRegex { pattern: String, message: String },

    #[error("unknown profile `{name}`{}; known profiles: {known}", suggestion(.did_you_mean))]
    UnknownProfile {
        name: String,
        known: String,
        did_you_mean: Option<String>,
    },

    #[error("no image matches {patterns}{}\nhint: `kolla-build --list-images` lists every image", suggestion(.did_you_mean))]
    NothingMatched {
        patterns: String,
        did_you_mean: Option<String>,
    },

    /// The engine is unreachable or refused something outside a single image's build.
    #[error("{0}")]
    Engine(#[from] EngineError),

    /// Something a run asked of an engine, outside a single image's build, failed: `doing` says
    /// what, `hint` (empty or `\nhint: ...`) what to do.
    #[error("{doing}: {source}{hint}")]
    EngineStep {
        doing: String,
        source: EngineError,
        hint: &'static str,
    },

    /// The engine (or every engine of a pool) stopped answering during the run.
    #[error(
        "{message}; lost (not built): {}\nhint: restart the engine and run again: finished images are fresh",
        .lost.join(", ")
    )]
    EngineLost { message: String, lost: Vec<String> },

    /// An external base image is missing and `--no-pull` forbids pulling it.
    #[error(
        "the base image `{reference}` is not in the engine and --no-pull forbids pulling it\n\
         hint: load it (`docker load`), or pass `--bootstrap-base` to make it with debootstrap"
    )]
    NoPull { reference: String },

    /// The engine said it pulled an image it then does not hold.
    #[error("`{reference}` is missing after its pull")]
    MissingAfterPull { reference: String },

    /// `--bootstrap-base` could not make the base image (the bootstrap's own error, which names
    /// the step and says what to do).
    #[error(transparent)]
    Bootstrap(Box<dyn std::error::Error + Send + Sync>),

    /// The source stage as a whole cannot run (its cache cannot be written), or the patches of
    /// `--patches-path` are refused (`prepare::patches`); a source that cannot be had fails its
    /// image alone.
    #[error(transparent)]
    Sources(Box<dyn std::error::Error + Send + Sync>),

    #[error("invalid value for `{key}`: {message}")]
    Setting { key: String, message: String },

    /// The export (`--export`) was not written; a previous file at `path` is kept. `source` is
    /// the export's own error (`publish::export::ExportError`, a later stage than this one).
    #[error("exporting to `{}` failed: {source}", .path.display())]
    Export {
        path: PathBuf,
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    /// A bug in kolla-build, not in the user's input (exit code 2).
    #[error(
        "internal error: {0}\nhint: this is a bug in kolla-build; please report it with the command line"
    )]
    Internal(String),

    /// SIGINT or SIGTERM stopped the run (exit code 128 + the signal).
    #[error("interrupted by {}: the work was stopped and its scratch files removed", crate::common::signals::name(*.signal))]
    Interrupted { signal: i32 },
}

impl Error {
    /// The process exit code for this error (documented in `--help`): 128 + the signal when
    /// interrupted, 2 for a bug of ours, else 1.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Interrupted { signal } => (128 + signal) as u8,
            Error::Internal(_) => INTERNAL_EXIT,
            _ => 1,
        }
    }
}

fn suggestion(name: &Option<String>) -> String {
    match name {
        Some(name) => format!("; did you mean `{name}`?"),
        None => String::new(),
    }
}

/// The closest of `candidates` to `word`, if it is close enough to be a plausible typo.
pub fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(word, c), c))
        .filter(|(score, _)| *score > 0.85)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c.to_string())
}

/// A template that failed to render, with the span that caused it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateError {
    /// The image being rendered, when the error is not in a shared file alone.
    pub image: Option<String>,
    /// The file the error points into, as the user knows it.
    pub path: String,
    pub message: String,
    pub line: Option<usize>,
    pub column: Option<usize>,
    /// The text of the failing line and the width of the span on it.
    pub source_line: Option<String>,
    pub width: usize,
}

impl TemplateError {
    /// Builds the error from a minijinja error; `path_of` maps template names to file paths.
    pub fn from_minijinja(
        image: Option<&str>,
        err: &minijinja::Error,
        path_of: impl Fn(&str) -> String,
    ) -> Self {
        // An error raised inside `{% include %}`/`{% import %}` is wrapped: point at the innermost
        // one that knows its place.
        let mut located = err;
        let mut cause = std::error::Error::source(err);
        while let Some(inner) = cause {
            if let Some(inner) = inner.downcast_ref::<minijinja::Error>() {
                if inner.line().is_some() {
                    located = inner;
                }
            }
            cause = inner.source();
        }
        let name = located.name().unwrap_or("<unknown>");
        let mut message = match located.detail() {
            Some(detail) => format!("{}: {detail}", kind_text(located.kind())),
            None => kind_text(located.kind()).to_string(),
        };
        let (mut line, mut column, mut source_line, mut width) = (located.line(), None, None, 1);
        if let (Some(range), Some(source)) = (located.range(), located.template_source()) {
            let start = range.start.min(source.len());
            let line_start = source[..start].rfind('\n').map_or(0, |i| i + 1);
            let line_end = source[start..]
                .find('\n')
                .map_or(source.len(), |i| start + i);
            line = Some(source[..start].matches('\n').count() + 1);
            column = Some(source[line_start..start].chars().count() + 1);
            let text = &source[line_start..line_end];
            source_line = Some(text.to_string());
            width = source[start..range.end.min(line_end).max(start)]
                .chars()
                .count()
                .max(1);
            if located.kind() == minijinja::ErrorKind::UndefinedError && range.end > start {
                let span = source[start..range.end.min(source.len())].trim();
                message = format!("undefined variable `{span}`");
            }
        } else if let (Some(l), Some(source)) = (line, located.template_source()) {
            source_line = source.lines().nth(l.saturating_sub(1)).map(str::to_string);
        }
        if located.kind() == minijinja::ErrorKind::UndefinedError {
            message.push_str(
                "\nhint: define it, test it with `is defined`, or set `undefined = \"lenient\"` for trees written for kolla",
            );
        }
        TemplateError {
            image: image.map(str::to_string),
            path: path_of(name),
            message,
            line,
            column,
            source_line,
            width,
        }
    }
}

fn kind_text(kind: minijinja::ErrorKind) -> &'static str {
    use minijinja::ErrorKind as K;
    match kind {
        K::SyntaxError => "syntax error",
        K::UndefinedError => "undefined value",
        K::TemplateNotFound => "template not found",
        K::UnknownFunction => "unknown function",
        K::UnknownFilter => "unknown filter",
        K::UnknownTest => "unknown test",
        K::MissingArgument => "missing argument",
        K::TooManyArguments => "too many arguments",
        K::InvalidOperation => "invalid operation",
        K::BadSerialization => "bad value",
        _ => "render error",
    }
}

impl fmt::Display for TemplateError {
    /// Renders like rustc/just: the message, an arrow to `path:line:col`, the line and a caret.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.image {
            Some(image) => writeln!(f, "error rendering image `{image}`: {}", self.message)?,
            None => writeln!(f, "error: {}", self.message)?,
        }
        let place = match (self.line, self.column) {
            (Some(l), Some(c)) => format!("{}:{l}:{c}", self.path),
            (Some(l), None) => format!("{}:{l}", self.path),
            _ => self.path.clone(),
        };
        writeln!(f, "  --> {place}")?;
        if let (Some(line), Some(text)) = (self.line, &self.source_line) {
            let gutter = line.to_string().len();
            writeln!(f, "{:gutter$} |", "")?;
            writeln!(f, "{line} | {}", text.replace('\t', "    "))?;
            if let Some(column) = self.column {
                let pad: String = text
                    .chars()
                    .take(column - 1)
                    .map(|c| if c == '\t' { "    " } else { " " })
                    .collect();
                writeln!(f, "{:gutter$} | {pad}{}", "", "^".repeat(self.width))?;
            }
        }
        Ok(())
    }
}

impl From<TemplateError> for Error {
    fn from(err: TemplateError) -> Self {
        Error::Template(Box::new(err))
    }
}

#[cfg(test)]
mod exit_code_tests {
    use super::*;

    #[test]
    fn bugs_exit_2_user_errors_1_signals_128_plus() {
        assert_eq!(Error::Internal("x".into()).exit_code(), 2);
        assert_eq!(
            Error::Setting {
                key: "tag".into(),
                message: "bad".into()
            }
            .exit_code(),
            1
        );
        assert_eq!(Error::Interrupted { signal: 2 }.exit_code(), 130);
    }

    #[test]
    fn a_message_error_is_its_message() {
        let e: crate::common::reference::ReferenceError = format!("bad `{}`", "x").into();
        assert_eq!(e.to_string(), "bad `x`");
        assert!(e.contains("`x`"));
    }
}

//! Config errors: each names the key path and what was expected.

/// Why a config could not be loaded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {reason}")]
    Read {
        /// The file.
        path: String,
        /// The OS reason.
        reason: String,
    },
    /// `${NAME}` referenced an unset variable.
    #[error(
        "line {line}: environment variable {name} is not set (referenced as ${{{name}}}; set it or use ${{{name}:-default}})"
    )]
    MissingEnv {
        /// Variable name.
        name: String,
        /// 1-based line.
        line: usize,
    },
    /// A `${` without a valid closing or name.
    #[error("line {line}: malformed ${{…}} reference: {reason}")]
    BadInterpolation {
        /// 1-based line.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// YAML syntax or shape error at a key path.
    #[error("{path}: {message}")]
    Invalid {
        /// Key path, e.g. `mcp.servers.files.command`.
        path: String,
        /// What is wrong and what is expected.
        message: String,
    },
}

impl ConfigError {
    /// A validation error at `path`.
    pub fn invalid(path: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError::Invalid {
            path: path.into(),
            message: message.into(),
        }
    }
}

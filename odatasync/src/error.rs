//! The errors of `odatasync` and the exit codes they map to.

use odata_runtime::client::{ClientError, TokenStoreError};
use odata_runtime::sql::SqlError;
use odata_runtime::sync::SyncError;

/// What stops a command. [`Error::exit_code`]: 2 for usage and configuration errors (nothing
/// was synced), 1 for everything that went wrong while talking to the service or the database.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A command line that cannot work (unknown entity, missing variable, ...).
    #[error("{0}")]
    Usage(String),
    /// `metadata-cache/<service>/` is missing, unreadable or inconsistent with the build.
    #[error("{0}")]
    Config(String),
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error(transparent)]
    Sync(#[from] SyncError),
    #[error(transparent)]
    Sql(#[from] SqlError),
    #[error("token store: {0}")]
    TokenStore(#[from] TokenStoreError),
    #[error("{0}")]
    Other(String),
}

impl Error {
    /// 2: usage or configuration; 1: a failure while running.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Usage(_) | Error::Config(_) => 2,
            _ => 1,
        }
    }
}

impl From<odata_runtime::sql::sqlx::Error> for Error {
    fn from(e: odata_runtime::sql::sqlx::Error) -> Self {
        Error::Sql(SqlError::Sqlx(e))
    }
}

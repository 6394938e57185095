//! The errors fluent raises from Rust, each mapped to its SQLSTATE here and
//! nowhere else. (The PL/pgSQL administration functions in `sql/admin.sql`
//! raise the same codes for the same kinds of mistakes.)

use pgrx::pg_sys::panic::ErrorReport;
use pgrx::{PgLogLevel, PgSqlErrorCode};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FluentError {
    /// A module name the current workspace does not have.
    UnknownModule { module: String, workspace: String },
    /// An action the module does not declare.
    UnknownAction { module: String, action: String },
    /// A user key that is not in `fluent.users`.
    UnknownUser { user: String },
    /// A workspace name that is not in `fluent.workspaces`.
    UnknownWorkspace { workspace: String },
    /// A user who may not act (ghost or disabled).
    UserCannotSignIn { user: String, status: String },
    /// A user without a sign-in role in a workspace that has sign-in roles.
    NoSignInRole { user: String, workspace: String },
    /// The caller may not see another user's permissions.
    OthersPermissionsDenied { user: String },
    /// The audit trigger attached to a table outside the fluent catalog.
    NotCatalogTable { table: String },
    /// A NULL where a value is required.
    NullArgument {
        argument: &'static str,
        hint: &'static str,
    },
    /// The calling role is not trusted to choose the acting user or workspace.
    NotTrusted { what: &'static str },
    /// The calling role is a member of a trusted role but does not inherit
    /// its privileges (NOINHERIT).
    TrustedOnlyAfterSetRole { denied: String, role: String },
    /// The calling role may not administer fluent.
    NotAdmin,
    /// The identity was chosen by an authenticator already in this
    /// transaction or session; only a token may change it.
    IdentitySealed { what: &'static str },
    /// `fluent.token_settings.keys` is not set.
    TokensNotConfigured,
    /// `fluent.token_settings.keys` does not hold a usable key set.
    TokenKeysInvalid { reason: String },
    /// A token failed verification.
    TokenRefused { reason: String },
    /// An administration implementation called without a valid caller ticket.
    NoCallerTicket,
    /// Administration attempted on a hot standby.
    OnStandby,
    /// A trigger function called as a plain function.
    NotCalledAsTrigger { function: &'static str },
    /// A `local` setting made outside a transaction block (a warning).
    LocalOutsideTransaction { function: &'static str },
}

impl FluentError {
    fn sqlstate(&self) -> PgSqlErrorCode {
        use FluentError::*;
        match self {
            UnknownModule { .. }
            | UnknownAction { .. }
            | UnknownUser { .. }
            | UnknownWorkspace { .. } => PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT,
            UserCannotSignIn { .. } | NoSignInRole { .. } => {
                PgSqlErrorCode::ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION
            }
            OthersPermissionsDenied { .. } | IdentitySealed { .. } | NoCallerTicket => {
                PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE
            }
            TokensNotConfigured | TokenKeysInvalid { .. } => {
                PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE
            }
            TokenRefused { .. } => PgSqlErrorCode::ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION,
            OnStandby => PgSqlErrorCode::ERRCODE_READ_ONLY_SQL_TRANSACTION,
            NotCatalogTable { .. } => PgSqlErrorCode::ERRCODE_WRONG_OBJECT_TYPE,
            NullArgument { .. } => PgSqlErrorCode::ERRCODE_NULL_VALUE_NOT_ALLOWED,
            NotTrusted { .. } | TrustedOnlyAfterSetRole { .. } | NotAdmin => {
                PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE
            }
            NotCalledAsTrigger { .. } => PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
            LocalOutsideTransaction { .. } => PgSqlErrorCode::ERRCODE_NO_ACTIVE_SQL_TRANSACTION,
        }
    }

    pub fn message(&self) -> String {
        use FluentError::*;
        match self {
            UnknownModule { module, workspace } => {
                format!("fluent module \"{module}\" does not exist in workspace \"{workspace}\"")
            }
            UnknownAction { module, action } => {
                format!("fluent module \"{module}\" has no action \"{action}\"")
            }
            UnknownUser { user } => format!("fluent user \"{user}\" does not exist"),
            UnknownWorkspace { workspace } => {
                format!("fluent workspace \"{workspace}\" does not exist")
            }
            UserCannotSignIn { user, status } => {
                format!("fluent user \"{user}\" is {status} and cannot act")
            }
            NoSignInRole { user, workspace } => {
                format!("fluent user \"{user}\" holds no sign-in role in workspace \"{workspace}\" and cannot act")
            }
            OthersPermissionsDenied { user } => {
                format!("permission denied to read the permissions of fluent user \"{user}\"")
            }
            IdentitySealed { what } => {
                format!("permission denied to change the fluent {what}: the identity was already chosen")
            }
            TokensNotConfigured => {
                "fluent cannot verify tokens: fluent.token_settings has no keys".into()
            }
            TokenKeysInvalid { reason } => {
                format!("the keys in fluent.token_settings are not usable: {reason}")
            }
            TokenRefused { reason } => format!("fluent token refused: {reason}"),
            NoCallerTicket => {
                "permission denied to call a fluent administration implementation directly".into()
            }
            OnStandby => {
                "fluent administration runs on the primary, and this server is a hot standby".into()
            }
            NotCatalogTable { table } => {
                format!("fluent.audit_change() audits the fluent catalog only, not \"{table}\"")
            }
            NullArgument { argument, .. } => format!("{argument} must not be NULL"),
            NotTrusted { what } => format!("permission denied to set the fluent {what}"),
            TrustedOnlyAfterSetRole { denied, .. } => denied.clone(),
            NotAdmin => "permission denied to administer fluent".into(),
            NotCalledAsTrigger { function } => {
                format!("{function}() can only be called as a trigger")
            }
            LocalOutsideTransaction { function } => {
                format!("{function}(..., local => true) can only be used in transaction blocks")
            }
        }
    }

    fn hint(&self) -> String {
        use FluentError::*;
        match self {
            UnknownModule { .. } => {
                "Create it with fluent_create_module(), or check the name and the current workspace (fluent_current_workspace())."
                    .into()
            }
            UnknownAction { .. } => {
                "Actions are declared by fluent_create_module(module, actions); see fluent.actions.".into()
            }
            UnknownUser { .. } => "Create the user with fluent_create_user().".into(),
            UnknownWorkspace { .. } => "Create it with fluent_create_workspace().".into(),
            UserCannotSignIn { .. } => "Activate the user with fluent_set_user_status(user, 'active').".into(),
            NoSignInRole { .. } => {
                "Grant one of the workspace's sign-in roles (fluent.roles.grants_sign_in), or set the workspace first."
                    .into()
            }
            OthersPermissionsDenied { .. } => {
                "An acting user may read their own permissions; superusers, fluent_admin and fluent_reader members and the workspace's delegated administrators may read anyone's."
                    .into()
            }
            IdentitySealed { .. } => {
                "A role trusted through fluent_authenticator chooses the identity once per transaction (local => true) or session; after that only fluent_authenticate(token) changes it. Start a new transaction."
                    .into()
            }
            TokensNotConfigured => {
                "A superuser sets the verification keys as a JSON Web Key Set: UPDATE fluent.token_settings SET keys = '{\"keys\": [...]}'.".into()
            }
            TokenKeysInvalid { .. } => "A superuser must correct fluent.token_settings.keys (a JSON Web Key Set).".into(),
            TokenRefused { .. } => {
                "Sign in again for a fresh token; the server checks the signature, exp, nbf, aud and iss as fluent.token_settings says."
                    .into()
            }
            NoCallerTicket => "Call the public fluent_* function instead.".into(),
            OnStandby => "Connect to the primary; its changes reach the standby's sessions as they are replayed.".into(),
            NotCatalogTable { .. } => "Drop the trigger; fluent installs its audit triggers itself.".into(),
            NullArgument { hint, .. } => (*hint).into(),
            NotTrusted { .. } => {
                "Only superusers and roles that inherit the privileges of fluent_authenticator or fluent_admin may; set it before SET ROLE to the application role."
                    .into()
            }
            TrustedOnlyAfterSetRole { role, .. } => format!(
                "The current role is a member of {role} but does not inherit its privileges (NOINHERIT): SET ROLE {role} first, or ALTER ROLE ... INHERIT."
            ),
            NotAdmin => {
                "Administration needs a superuser or a role that inherits the privileges of fluent_admin (GRANT fluent_admin TO ...).".into()
            }
            NotCalledAsTrigger { .. } => "fluent attaches its triggers to the catalog tables itself.".into(),
            LocalOutsideTransaction { .. } => {
                "It lasts until the end of the current transaction, which here is this statement: use BEGIN first, or local => false for the session.".into()
            }
        }
    }

    /// Raises the error in PostgreSQL; the current statement is aborted.
    #[track_caller]
    pub fn report(self) -> ! {
        ErrorReport::new(self.sqlstate(), self.message(), "fluent")
            .set_hint(self.hint())
            .report(PgLogLevel::ERROR);
        unreachable!("ERROR does not return")
    }

    /// Sends the message as a WARNING; the statement goes on.
    #[track_caller]
    pub fn warn(self) {
        ErrorReport::new(self.sqlstate(), self.message(), "fluent")
            .set_hint(self.hint())
            .report(PgLogLevel::WARNING);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_names_are_undefined_object() {
        let e = FluentError::UnknownAction {
            module: "invoices".into(),
            action: "fly".into(),
        };
        assert_eq!(e.sqlstate(), PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT);
        assert!(e.message().contains("\"fly\""));
        assert!(e.hint().contains("fluent_create_module"));
    }

    #[test]
    fn untrusted_caller_is_insufficient_privilege() {
        let e = FluentError::NotTrusted { what: "user" };
        assert_eq!(e.sqlstate(), PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE);
    }
}

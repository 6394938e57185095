//! In-backend tests, run by `cargo pgrx test` inside a transaction that is
//! rolled back afterwards.

use pgrx::prelude::*;

#[pg_schema]
mod tests {
    use pgrx::prelude::*;

    fn run(sql: &str) {
        Spi::run(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    fn scope(user: &str, module: &str, action: &str) -> String {
        Spi::get_one_with_args::<String>(
            "SELECT fluent_scope($1, $2, $3)",
            &[user.into(), module.into(), action.into()],
        )
        .unwrap()
        .unwrap()
    }

    fn setup() {
        run("SELECT fluent_create_module('invoices', ARRAY['read','write','delete','approve'])");
        run("SELECT fluent_create_module('line_items', parent => 'invoices')");
        run("SELECT fluent_create_role('billing')");
        run("SELECT fluent_set_permission('billing', 'invoices', 'read', 'all')");
        run("SELECT fluent_create_user('bea')");
    }

    #[pg_test]
    fn the_cache_follows_changes_made_in_the_same_transaction() {
        setup();
        assert_eq!(scope("bea", "invoices", "read"), "none");
        run("SELECT fluent_grant_role('bea', 'billing')");
        assert_eq!(scope("bea", "invoices", "read"), "all");
        run("SELECT fluent_set_permission('billing', 'invoices', 'read', 'own')");
        assert_eq!(scope("bea", "invoices", "read"), "own");
        run("SELECT fluent_set_user_status('bea', 'disabled')");
        assert_eq!(scope("bea", "invoices", "read"), "none");
    }

    #[pg_test]
    fn submodules_inherit_only_actions_of_the_same_name() {
        setup();
        run("SELECT fluent_grant_role('bea', 'billing')");
        run("SELECT fluent_set_permission('billing', 'invoices', 'approve', 'team')");
        assert_eq!(scope("bea", "line_items", "read"), "all");
        // line_items declares read/write/delete only: approve is not its action.
        let err = std::panic::catch_unwind(|| scope("bea", "line_items", "approve"));
        assert!(err.is_err());
    }

    #[pg_test]
    fn team_scope_reaches_led_teams_and_the_whole_reporting_line() {
        setup();
        run("SELECT fluent_set_permission('billing', 'invoices', 'write', 'team')");
        run("SELECT fluent_create_user('mid', manager => 'bea')");
        run("SELECT fluent_create_user('low', manager => 'mid')");
        run("SELECT fluent_create_user('mate')");
        run("SELECT fluent_create_user('outsider')");
        run("SELECT fluent_create_team('t')");
        run("SELECT fluent_add_team_member('t', 'bea', true)");
        run("SELECT fluent_add_team_member('t', 'mate')");
        run("SELECT fluent_grant_role('bea', 'billing')");
        run("SELECT fluent_set_user('bea', true)");
        let keys: Vec<String> = Spi::get_one("SELECT fluent.rls_owner_keys('invoices', 'write')")
            .unwrap()
            .unwrap();
        assert_eq!(keys, vec!["bea", "low", "mate", "mid"]);
        // read is `all`: reached users are the same set, `all` is tested apart
        let all: bool = Spi::get_one("SELECT fluent.rls_all('invoices', 'read')")
            .unwrap()
            .unwrap();
        assert!(all);
        let none: Vec<String> = Spi::get_one("SELECT fluent.rls_owner_keys('invoices', 'delete')")
            .unwrap()
            .unwrap();
        assert!(none.is_empty());
    }

    #[pg_test(error = "fluent module \"nowhere\" does not exist in workspace \"default\"")]
    fn an_unknown_module_is_an_error() {
        setup();
        scope("bea", "nowhere", "read");
    }

    #[pg_test]
    fn null_and_unknown_users_get_false_and_none() {
        setup();
        let can: bool = Spi::get_one("SELECT fluent_can(NULL, 'invoices', 'read')")
            .unwrap()
            .unwrap();
        assert!(!can);
        assert_eq!(scope("stranger", "invoices", "read"), "none");
        let acting: bool = Spi::get_one("SELECT fluent_can('invoices', 'read')")
            .unwrap()
            .unwrap();
        assert!(!acting, "no acting user");
    }
}

/// Hooks for `cargo pgrx test`.
pub mod pg_test {
    pub fn setup(_options: Vec<&str>) {}

    pub fn postgresql_conf_options() -> Vec<&'static str> {
        vec![]
    }
}

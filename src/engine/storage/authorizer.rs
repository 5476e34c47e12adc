//! The SQLite authorizer policy for user SQL, mirroring what Cloudflare enforces on
//! `ctx.storage.sql.exec()`.
//!
//! SQLite calls an authorizer for every action a statement will take (read a column, create a
//! table, call a function, ...) while it compiles the statement, and refuses to compile it when
//! one is denied. The rules here follow workerd's `SqliteDatabase::isAuthorized` in
//! `src/workerd/util/sqlite.c++` together with `SqlStorage::isAllowedName` and
//! `SqlStorage::allowTransactions` in `src/workerd/api/sql.c++`:
//!
//! - Names starting with `_cf_` belong to the runtime (`_cf_KV` holds the KV API's data,
//!   `_cf_METADATA` the alarm). User SQL cannot create, read, write, alter, drop or rename into
//!   them. Their names stay visible through `PRAGMA table_list` and `sqlite_master`.
//! - Transactions are the JavaScript API's job: `BEGIN`, `COMMIT`, `SAVEPOINT`, ... are denied,
//!   and [`AuthorizerState::take_denial`] lets the caller replace SQLite's "not authorized" with
//!   Cloudflare's explanation.
//! - Only allowlisted pragmas (with allowlisted arguments) and functions may be used, and only
//!   the FTS5 and R*Tree virtual table modules.
//! - There is one database: `ATTACH`, `DETACH` and TEMP objects are denied.
//!
//! The storage layer runs its own statements with [`AuthorizerState::set_internal`] on, which
//! allows everything, and checks one rule SQLite cannot ask the authorizer about with
//! [`check_rename`].
//!
//! [`sqlite_error_message`] formats SQLite errors the way workerd throws them.

use std::ffi::{c_char, c_int, c_void, CStr};
use std::panic::catch_unwind;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use rusqlite::{ffi, Connection};

use super::sql_text;

/// Cloudflare's error for transaction statements in user SQL, thrown as is (with no
/// `: SQLITE_...` suffix). Wording from workerd's `SqlStorage::allowTransactions`
/// (`src/workerd/api/sql.c++`).
pub const TRANSACTION_STATEMENT_MESSAGE: &str =
    "To execute a transaction, please use the state.storage.transaction() or \
     state.storage.transactionSync() APIs instead of the SQL BEGIN TRANSACTION or SAVEPOINT \
     statements. The JavaScript API is safer because it will automatically roll back on \
     exceptions, and because it interacts correctly with Durable Objects' automatic atomic write \
     coalescing.";

/// A denial Cloudflare reports with its own message rather than SQLite's. Every other denial is
/// reported with SQLite's wording ("not authorized", "access to t.c is prohibited",
/// "not authorized to use function: f"), exactly as workerd does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Denial {
    /// `BEGIN`, `COMMIT`/`END`, `ROLLBACK`, `SAVEPOINT`, `RELEASE` or `ROLLBACK TO`.
    TransactionStatement,
}

impl Denial {
    /// The message to throw instead of SQLite's.
    pub fn message(self) -> &'static str {
        match self {
            Denial::TransactionStatement => TRANSACTION_STATEMENT_MESSAGE,
        }
    }
}

/// Shared, cheap-to-clone switch the storage layer flips while it prepares and steps its own
/// internal statements (on `_cf_KV`, `_cf_METADATA`, savepoints), which the policy must allow.
/// The authorizer installed by [`install`] holds one clone; the storage layer keeps another.
#[derive(Clone, Debug, Default)]
pub struct AuthorizerState {
    shared: Arc<Shared>,
}

#[derive(Debug, Default)]
struct Shared {
    internal: AtomicBool,
    denial: Mutex<Option<Denial>>,
    /// A statement since the last `take_sets_connection` tried to set one of the
    /// connection's pragmas (`PRAGMA foreign_keys = ON`): SQLite calls such a statement
    /// read-only, yet it changes how later statements on the connection behave, and it
    /// does so while the statement is prepared.
    sets_connection: AtomicBool,
    /// Refuse such statements (see `refuse_connection_settings`).
    refuse_settings: AtomicBool,
    /// The connection's pragmas user SQL set, by name, as last set (`connection_settings`).
    settings: Mutex<Vec<(String, String)>>,
}

impl AuthorizerState {
    /// Turns internal mode on or off. In internal mode every action is allowed.
    ///
    /// Keep it on while *stepping* internal statements too, not only while preparing them:
    /// when a statement's schema has changed since it was prepared (say user SQL created a table
    /// after the storage layer cached its `_cf_KV` statements), `sqlite3_step` transparently
    /// re-prepares it, and that runs the authorizer again. Likewise keep it off while stepping
    /// user statements, so their re-preparation is checked against the user policy.
    pub fn set_internal(&self, on: bool) {
        // Relaxed is enough: a connection is used by one thread at a time, and handing it to
        // another thread synchronizes everything written before.
        self.shared.internal.store(on, Ordering::Relaxed);
    }

    /// Whether internal mode is on.
    pub fn is_internal(&self) -> bool {
        self.shared.internal.load(Ordering::Relaxed)
    }

    /// Why the last denial happened, so the caller can replace SQLite's generic "not authorized"
    /// with Cloudflare's message. Cleared by take.
    ///
    /// Call it when preparing a user statement fails: `Some` means throw [`Denial::message`]
    /// instead of SQLite's error.
    pub fn take_denial(&self) -> Option<Denial> {
        self.denial().take()
    }

    /// Makes statements that set a pragma of the connection fail to prepare (recording it
    /// for `take_sets_connection`): for the database that answers reads of objects without
    /// a file, which they share.
    pub fn refuse_connection_settings(&self) {
        self.shared.refuse_settings.store(true, Ordering::Relaxed);
    }

    /// The connection's pragmas user SQL set (`foreign_keys` = `ON`, ...), each as last set.
    /// They live on the connection, not in the file: a connection closed to make room, or
    /// because its object went idle, must be given them again when it reopens.
    pub fn connection_settings(&self) -> Vec<(String, String)> {
        self.shared.settings.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Whether a statement prepared since the last call set (or tried to set) a pragma of
    /// the connection.
    pub fn take_sets_connection(&self) -> bool {
        self.shared.sets_connection.swap(false, Ordering::Relaxed)
    }

    fn record(&self, denial: Denial) {
        *self.denial() = Some(denial);
    }

    fn denial(&self) -> MutexGuard<'_, Option<Denial>> {
        // The guarded value is a plain `Option`, valid even if a holder panicked.
        self.shared
            .denial
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// Installs the policy on a connection, replacing any authorizer it had. `state` stays attached
/// to the connection until it closes or `install` is called again.
///
/// Also removes the virtual table modules our bundled SQLite has but workerd's does not (`dbstat`,
/// FTS3/FTS4), so that the eponymous `dbstat` table, which needs no `CREATE VIRTUAL TABLE` and so
/// escapes the module allowlist, is "no such table" here as it is on Cloudflare.
pub fn install(conn: &Connection, state: AuthorizerState) -> rusqlite::Result<()> {
    drop_unsupported_modules(conn)?;
    // rusqlite's safe `Connection::authorizer` needs `&mut Connection`; the C API needs only the
    // handle. SQLite owns the state through the connection's client data, which it frees when the
    // connection closes or when the next `install` replaces it.
    let state = Box::into_raw(Box::new(state)).cast::<c_void>();
    // SAFETY: the handle is valid while `conn` lives. The client data entry owns `state`:
    // replacing an earlier entry frees the earlier state, whose authorizer is about to be
    // replaced too, and nothing can run SQL on this connection between the two calls because we
    // hold it. On failure SQLite frees `state` itself and the authorizer is left untouched.
    unsafe {
        let db = conn.handle();
        check(ffi::sqlite3_set_clientdata(
            db,
            STATE_KEY.as_ptr(),
            state,
            Some(free_state),
        ))?;
        check(ffi::sqlite3_set_authorizer(db, Some(authorize), state))
    }
}

/// The name of the connection's client data entry that owns the installed [`AuthorizerState`].
const STATE_KEY: &CStr = c"open-do authorizer state";

/// Frees an [`AuthorizerState`] installed by [`install`].
unsafe extern "C" fn free_state(state: *mut c_void) {
    // SAFETY: SQLite passes back the pointer `install` made with `Box::into_raw`, exactly once.
    drop(unsafe { Box::from_raw(state.cast::<AuthorizerState>()) });
}

/// The callback SQLite calls while compiling a statement; see `sqlite3_set_authorizer`.
unsafe extern "C" fn authorize(
    state: *mut c_void,
    action: c_int,
    arg1: *const c_char,
    arg2: *const c_char,
    schema: *const c_char,
    _accessor: *const c_char,
) -> c_int {
    // SAFETY: `state` is the `AuthorizerState` that `install` registered with this callback, kept
    // alive by the connection; the other arguments are null or NUL-terminated strings that SQLite
    // keeps valid for the duration of the call.
    let (state, arg1, arg2, schema) = unsafe {
        (
            &*state.cast::<AuthorizerState>(),
            text(arg1),
            text(arg2),
            text(schema),
        )
    };
    // A panic must not unwind into SQLite's C frames; denying is the safe answer.
    let allowed =
        catch_unwind(|| state.is_internal() || is_authorized(state, action, arg1, arg2, schema));
    if allowed.unwrap_or(false) {
        ffi::SQLITE_OK
    } else {
        ffi::SQLITE_DENY
    }
}

/// A string argument of the authorizer callback. SQL reaches us from JavaScript strings, so
/// names are UTF-8; anything else reads as absent, which every rule treats as a denial.
///
/// # Safety
/// `arg` must be null or point to a NUL-terminated string that outlives `'a`.
unsafe fn text<'a>(arg: *const c_char) -> Option<&'a str> {
    if arg.is_null() {
        None
    } else {
        // SAFETY: guaranteed by the caller.
        unsafe { CStr::from_ptr(arg) }.to_str().ok()
    }
}

fn check(code: c_int) -> rusqlite::Result<()> {
    if code == ffi::SQLITE_OK {
        Ok(())
    } else {
        Err(rusqlite::Error::SqliteFailure(ffi::Error::new(code), None))
    }
}

/// Virtual table modules user SQL may create tables with: full-text search (`fts5vocab` comes
/// with FTS5) and R*Tree spatial indexes. Compared ignoring case, as SQLite matches module names.
const ALLOWED_MODULES: [&CStr; 4] = [c"fts5", c"fts5vocab", c"rtree", c"rtree_i32"];

fn drop_unsupported_modules(conn: &Connection) -> rusqlite::Result<()> {
    let mut keep = ALLOWED_MODULES.map(CStr::as_ptr).to_vec();
    keep.push(std::ptr::null());
    // SAFETY: the handle is valid while `conn` lives, and `keep` is a null-terminated array of
    // NUL-terminated strings that outlives the call; SQLite does not keep it.
    check(unsafe { ffi::sqlite3_drop_modules(conn.handle(), keep.as_mut_ptr()) })
}

/// Denies `ALTER TABLE t RENAME TO _cf_...` given the text of a user statement (the rest of the
/// query is fine: only its first statement is looked at).
///
/// SQLite's authorizer is told the table being renamed but not its new name; workerd patches
/// SQLite to pass it, our bundled SQLite is stock. Call this for each user statement once it has
/// been prepared and before stepping it (the order in which SQLite would have checked). The error
/// is the one SQLite raises for other denials, so it formats as `not authorized: SQLITE_AUTH`.
pub fn check_rename(sql: &str) -> rusqlite::Result<()> {
    match sql_text::rename_target(sql) {
        Some(target) if is_reserved_name(&target) => Err(rusqlite::Error::SqliteFailure(
            ffi::Error::new(ffi::SQLITE_AUTH),
            Some("not authorized".to_owned()),
        )),
        _ => Ok(()),
    }
}

/// Whether `name` belongs to the runtime: it starts with `_cf_`, ignoring case.
///
/// workerd compares case-sensitively, but SQLite resolves names ignoring case, so `_CF_KV` names
/// the same table as `_cf_KV` in `PRAGMA table_info(_CF_KV)`, and `CREATE TABLE _CF_KV` would take
/// the name before the KV API creates its table. Ignoring case closes both.
pub fn is_reserved_name(name: &str) -> bool {
    name.as_bytes()
        .get(..4)
        .is_some_and(|prefix| prefix.eq_ignore_ascii_case(b"_cf_"))
}

/// Whether user SQL may touch the object called `name`; a missing name is denied.
fn is_allowed_name(name: Option<&str>) -> bool {
    name.is_some_and(|name| !is_reserved_name(name))
}

/// The user policy, on the authorizer's raw arguments (what `arg1` and `arg2` hold for each action
/// is listed at <https://sqlite.org/c3ref/c_alter_table.html>). `state` records the denials
/// Cloudflare words differently.
fn is_authorized(
    state: &AuthorizerState,
    action: c_int,
    arg1: Option<&str>,
    arg2: Option<&str>,
    schema: Option<&str>,
) -> bool {
    // ALTER TABLE and DETACH pass their schema as the first argument rather than the usual place,
    // where DROP COLUMN puts the column's name instead.
    let (arg1, schema) = match action {
        ffi::SQLITE_ALTER_TABLE => (arg2, arg1),
        ffi::SQLITE_DETACH => (None, arg1),
        _ => (arg1, schema),
    };
    match schema {
        // SQLite reads and updates `sqlite_temp_master` while altering tables; TEMP objects
        // themselves would live in a separate temporary file the storage layer does not track.
        Some("temp") => {
            return matches!(action, ffi::SQLITE_READ | ffi::SQLITE_UPDATE) && is_allowed_name(arg1)
        }
        // Each object has exactly one database file.
        Some(schema) if schema != "main" => return false,
        _ => {}
    }

    match action {
        ffi::SQLITE_SELECT | ffi::SQLITE_RECURSIVE => true,

        // `PRAGMA optimize` runs ANALYZE over every table, reserved ones included. The statistics
        // it records in `sqlite_stat1` describe indexes and row counts, not row contents.
        ffi::SQLITE_ANALYZE => true,

        // The first argument names the table, view or index acted on.
        ffi::SQLITE_CREATE_TABLE
        | ffi::SQLITE_DROP_TABLE
        | ffi::SQLITE_ALTER_TABLE
        | ffi::SQLITE_INSERT
        | ffi::SQLITE_DELETE
        | ffi::SQLITE_READ
        | ffi::SQLITE_UPDATE
        | ffi::SQLITE_CREATE_VIEW
        | ffi::SQLITE_DROP_VIEW
        | ffi::SQLITE_REINDEX => is_allowed_name(arg1),

        // An index or trigger (first argument) and the table it belongs to (second).
        ffi::SQLITE_CREATE_INDEX
        | ffi::SQLITE_DROP_INDEX
        | ffi::SQLITE_CREATE_TRIGGER
        | ffi::SQLITE_DROP_TRIGGER => is_allowed_name(arg1) && is_allowed_name(arg2),

        ffi::SQLITE_TRANSACTION | ffi::SQLITE_SAVEPOINT => {
            state.record(Denial::TransactionStatement);
            false
        }

        ffi::SQLITE_PRAGMA => {
            let allowed = arg1.is_some_and(|pragma| is_allowed_pragma(pragma, arg2));
            if let (true, Some(name), Some(value)) = (allowed, arg1, arg2) {
                if sets_a_boolean(name) {
                    state.shared.sets_connection.store(true, Ordering::Relaxed);
                    if state.shared.refuse_settings.load(Ordering::Relaxed) {
                        return false;
                    }
                    // SQLite applies such a pragma while preparing it (the statement itself
                    // does nothing), so it counts from here, whatever becomes of the statement.
                    // `defer_foreign_keys` lasts one transaction only: nothing to keep.
                    if name != "defer_foreign_keys" {
                        let mut settings = state.shared.settings.lock().unwrap_or_else(|p| p.into_inner());
                        settings.retain(|(set, _)| set != name);
                        settings.push((name.to_owned(), value.to_owned()));
                    }
                    return true;
                }
            }
            allowed
        }

        ffi::SQLITE_FUNCTION => arg2.is_some_and(|function| ALLOWED_FUNCTIONS.contains(&function)),

        // The table (first argument) and its module (second).
        ffi::SQLITE_CREATE_VTABLE | ffi::SQLITE_DROP_VTABLE => {
            let module = arg2.unwrap_or_default();
            ALLOWED_MODULES
                .iter()
                .any(|allowed| allowed.to_bytes().eq_ignore_ascii_case(module.as_bytes()))
                && is_allowed_name(arg1)
        }

        // ATTACH, DETACH, TEMP objects in any spelling (`CREATE TEMP TABLE`, `CREATE TABLE
        // temp.t`, ...), the obsolete COPY, and any action a newer SQLite might add.
        _ => false,
    }
}

/// The argument an allowlisted pragma accepts.
#[derive(Clone, Copy)]
enum PragmaArgument {
    /// Anything, including nothing.
    Any,
    /// None: the pragma may only be read.
    Nothing,
    /// Optional: one of SQLite's spellings of a boolean, to set the value; none to read it.
    Boolean,
    /// Required: a table or index that is not reserved.
    ObjectName,
    /// Optional: a table or index that is not reserved.
    OptionalObjectName,
    /// Optional: a 32-bit integer (`PRAGMA optimize`'s bit mask).
    OptionalInteger,
    /// Optional: a row count or a table or index that is not reserved (`PRAGMA quick_check`).
    OptionalCountOrObjectName,
}

/// The pragmas user SQL may run, from workerd's `ALLOWED_PRAGMAS` and the special cases before it.
///
/// Names are compared exactly, as workerd does. SQLite hands the authorizer the name as written,
/// so `PRAGMA FOREIGN_KEYS` is denied on Cloudflare and here alike. `PRAGMA user_version` and
/// everything else not listed is denied.
const ALLOWED_PRAGMAS: [(&str, PragmaArgument); 19] = [
    // Lists every table, reserved ones included: their existence is no secret, their contents are.
    ("table_list", PragmaArgument::Any),
    ("table_info", PragmaArgument::ObjectName),
    ("table_xinfo", PragmaArgument::ObjectName),
    // FTS5 reads `data_version` while writing and the R*Tree module reads `page_size` when it
    // creates a table, both from within the user's statement. Setting the page size stays denied.
    ("data_version", PragmaArgument::Nothing),
    ("page_size", PragmaArgument::Nothing),
    ("case_sensitive_like", PragmaArgument::Boolean),
    ("foreign_keys", PragmaArgument::Boolean),
    ("defer_foreign_keys", PragmaArgument::Boolean),
    ("ignore_check_constraints", PragmaArgument::Boolean),
    ("legacy_alter_table", PragmaArgument::Boolean),
    ("recursive_triggers", PragmaArgument::Boolean),
    ("reverse_unordered_selects", PragmaArgument::Boolean),
    ("foreign_key_check", PragmaArgument::OptionalObjectName),
    ("foreign_key_list", PragmaArgument::ObjectName),
    ("index_info", PragmaArgument::ObjectName),
    ("index_list", PragmaArgument::ObjectName),
    ("index_xinfo", PragmaArgument::ObjectName),
    // `ALTER TABLE ... ADD COLUMN` runs `quick_check` on the table to validate new constraints.
    ("quick_check", PragmaArgument::OptionalCountOrObjectName),
    ("optimize", PragmaArgument::OptionalInteger),
];

/// A pragma whose argument sets the connection's value of it.
fn sets_a_boolean(name: &str) -> bool {
    ALLOWED_PRAGMAS.iter().any(|(allowed, accepts)| *allowed == name && matches!(accepts, PragmaArgument::Boolean))
}

fn is_allowed_pragma(name: &str, argument: Option<&str>) -> bool {
    let Some(&(_, accepts)) = ALLOWED_PRAGMAS.iter().find(|(allowed, _)| *allowed == name) else {
        return false;
    };
    match (accepts, argument) {
        (PragmaArgument::Any, _) => true,
        (PragmaArgument::Nothing, argument) => argument.is_none(),
        (PragmaArgument::ObjectName, name) => is_allowed_name(name),
        // With no argument the others read their current value or check the whole database.
        (_, None) => true,
        (PragmaArgument::Boolean, Some(value)) => is_boolean(value),
        (PragmaArgument::OptionalObjectName, name) => is_allowed_name(name),
        (PragmaArgument::OptionalInteger, Some(value)) => {
            parse_integer(value).is_some_and(|n| i32::try_from(n).is_ok())
        }
        (PragmaArgument::OptionalCountOrObjectName, Some(value)) => {
            parse_integer(value).is_some_and(|n| u32::try_from(n).is_ok())
                || is_allowed_name(Some(value))
        }
    }
}

/// Whether a pragma value is one of SQLite's spellings of a boolean, judged as workerd does: after
/// removing surrounding quotes, the value must *start* with `true`, `false`, `yes`, `no`, `on`,
/// `off`, `1` or `0`, ignoring case. (workerd compares prefixes, so `10` or `yesterday` pass too;
/// SQLite then reads them as it reads any other value.)
fn is_boolean(value: &str) -> bool {
    let unquoted = ['\'', '"']
        .iter()
        .find_map(|&quote| value.strip_prefix(quote)?.strip_suffix(quote))
        .unwrap_or(value);
    ["true", "false", "yes", "no", "on", "off", "1", "0"]
        .iter()
        .any(|spelling| {
            unquoted
                .as_bytes()
                .get(..spelling.len())
                .is_some_and(|p| p.eq_ignore_ascii_case(spelling.as_bytes()))
        })
}

/// Parses an integer the way workerd's `kj::StringPtr::tryParseAs` does: an optional sign, then
/// decimal digits or `0x` and hexadecimal digits.
fn parse_integer(text: &str) -> Option<i64> {
    let (negative, unsigned) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let magnitude = match unsigned
        .strip_prefix("0x")
        .or_else(|| unsigned.strip_prefix("0X"))
    {
        Some(hex) if !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit()) => {
            i64::from_str_radix(hex, 16).ok()?
        }
        None if !unsigned.is_empty() && unsigned.bytes().all(|b| b.is_ascii_digit()) => {
            unsigned.parse().ok()?
        }
        _ => return None,
    };
    Some(if negative { -magnitude } else { magnitude })
}

/// The SQL functions user SQL may call: workerd's `ALLOWED_SQLITE_FUNCTIONS`, grouped as there by
/// the SQLite documentation page that lists them. Everything else fails to compile with
/// "not authorized to use function: ...", including the functions that reveal SQLite's build
/// (`sqlite_version`, `sqlite_source_id`, `sqlite_compileoption_*`, `sqlite_offset`) and names
/// SQLite has but workerd does not list (`if`, `unistr`, `json_pretty`, `json_error_position`,
/// the math aliases `ceiling`, `power` and `log10`, ...).
///
/// The math functions are listed as in workerd, whose SQLite is built with
/// `SQLITE_ENABLE_MATH_FUNCTIONS`; the SQLite bundled by `libsqlite3-sys` is not, so until the
/// build defines it (`LIBSQLITE3_FLAGS`), they fail with "no such function" instead.
#[rustfmt::skip]
const ALLOWED_FUNCTIONS: &[&str] = &[
    // https://www.sqlite.org/lang_corefunc.html
    "abs", "changes", "char", "coalesce", "concat", "concat_ws", "format", "glob", "hex", "ifnull",
    "iif", "instr", "last_insert_rowid", "length", "like", "likelihood", "likely",
    // Allowed as in workerd, but the SQL function stays disabled (it fails with "not authorized")
    // because nothing calls `sqlite3_enable_load_extension` on the connection.
    "load_extension",
    "lower", "ltrim", "max_scalar", "min_scalar", "nullif", "octet_length", "printf", "quote",
    "random", "randomblob", "replace", "round", "rtrim", "sign", "soundex", "substr", "substring",
    "total_changes", "trim", "typeof", "unhex", "unicode", "unlikely", "upper", "zeroblob",
    // https://www.sqlite.org/lang_datefunc.html
    "date", "time", "datetime", "julianday", "unixepoch", "strftime", "timediff", "current_date",
    "current_time", "current_timestamp",
    // https://www.sqlite.org/lang_aggfunc.html
    "avg", "count", "group_concat", "max", "min", "string_agg", "sum", "total",
    // https://www.sqlite.org/windowfunctions.html#biwinfunc
    "row_number", "rank", "dense_rank", "percent_rank", "cume_dist", "ntile", "lag", "lead",
    "first_value", "last_value", "nth_value",
    // https://www.sqlite.org/lang_mathfunc.html
    "acos", "acosh", "asin", "asinh", "atan", "atan2", "atanh", "ceil", "cos", "cosh", "degrees",
    "exp", "floor", "ln", "log", "log2", "mod", "pi", "pow", "radians", "sin", "sinh", "sqrt",
    "tan", "tanh", "trunc",
    // https://www.sqlite.org/json1.html
    "json", "jsonb", "json_array", "jsonb_array", "json_array_length", "json_extract",
    "jsonb_extract", "->", "->>", "json_insert", "jsonb_insert", "json_object", "jsonb_object",
    "json_patch", "jsonb_patch", "json_remove", "jsonb_remove", "json_replace", "jsonb_replace",
    "json_set", "jsonb_set", "json_type", "json_valid", "json_quote", "json_group_array",
    "jsonb_group_array", "json_group_object", "jsonb_group_object", "json_each", "json_tree",
    // https://www.sqlite.org/fts5.html
    "match", "highlight", "bm25", "snippet",
    // https://www.sqlite.org/rtree.html
    "rtreecheck",
    // SQLite's own ALTER TABLE implementation calls these from within the user's statement
    // (https://www.sqlite.org/lang_altertable.html). The constraint helpers newer SQLite uses for
    // `ALTER TABLE ... ADD/DROP CONSTRAINT` are not listed: Cloudflare's SQLite lacks that syntax.
    "sqlite_rename_column", "sqlite_rename_table", "sqlite_rename_test", "sqlite_drop_column",
    "sqlite_rename_quotefix",
];

/// Formats an error the way workerd throws it: `"<sqlite message>: SQLITE_<CODE>"`, e.g.
/// `string or blob too big: SQLITE_TOOBIG`.
///
/// As in workerd's `dbErrorMessage` (`src/workerd/util/sqlite.c++`):
/// - a message that points into the SQL gets ` at offset N` before the code:
///   `near "SELEC": syntax error at offset 0: SQLITE_ERROR`;
/// - the code is the name of the *primary* result code, and when the extended code differs, its
///   name follows in parentheses:
///   `UNIQUE constraint failed: t.id: SQLITE_CONSTRAINT (extended: SQLITE_CONSTRAINT_PRIMARYKEY)`.
///
/// The offset comes from rusqlite's `SqlInputError`, which rusqlite builds from
/// `sqlite3_error_offset` when a prepare fails; an error built from a raw handle needs the same
/// to show it. Errors that did not come from SQLite (a failed conversion, a wrong parameter
/// count) are formatted by rusqlite.
pub fn sqlite_error_message(err: &rusqlite::Error) -> String {
    let (error, message, offset) = match err {
        rusqlite::Error::SqliteFailure(error, message) => (error, message.as_deref(), None),
        rusqlite::Error::SqlInputError {
            error, msg, offset, ..
        } => (error, Some(msg.as_str()), Some(*offset)),
        other => return other.to_string(),
    };
    let code = error.extended_code;
    let primary = code & 0xff;
    let mut text = message.map_or_else(|| error_string(code), str::to_owned);
    if let Some(offset) = offset {
        text.push_str(&format!(" at offset {offset}"));
    }
    text.push_str(": ");
    text.push_str(&primary_code_name(primary));
    if code != primary {
        if let Some(name) = extended_code_name(code) {
            text.push_str(&format!(" (extended: {name})"));
        }
    }
    text
}

/// SQLite's generic description of a result code, for the rare errors that carry no message.
fn error_string(code: i32) -> String {
    // SAFETY: `sqlite3_errstr` accepts any code and returns a pointer to a static NUL-terminated
    // English string.
    unsafe { CStr::from_ptr(ffi::sqlite3_errstr(code)) }
        .to_string_lossy()
        .into_owned()
}

/// Expands to a `match` from result-code constants to their names, so each name is written once.
macro_rules! code_names {
    ($code:expr; $($name:ident),+ $(,)?) => {
        match $code {
            $(ffi::$name => Some(stringify!($name)),)+
            _ => None,
        }
    };
}

/// The name of a primary result code, as workerd's `namedErrorCode` spells it.
fn primary_code_name(code: i32) -> String {
    let name = code_names!(code;
        SQLITE_OK, SQLITE_ERROR, SQLITE_INTERNAL, SQLITE_PERM, SQLITE_ABORT, SQLITE_BUSY,
        SQLITE_LOCKED, SQLITE_NOMEM, SQLITE_READONLY, SQLITE_INTERRUPT, SQLITE_IOERR,
        SQLITE_CORRUPT, SQLITE_NOTFOUND, SQLITE_FULL, SQLITE_CANTOPEN, SQLITE_PROTOCOL,
        SQLITE_EMPTY, SQLITE_SCHEMA, SQLITE_TOOBIG, SQLITE_CONSTRAINT, SQLITE_MISMATCH,
        SQLITE_MISUSE, SQLITE_NOLFS, SQLITE_AUTH, SQLITE_FORMAT, SQLITE_RANGE, SQLITE_NOTADB,
        SQLITE_NOTICE, SQLITE_WARNING, SQLITE_ROW, SQLITE_DONE,
    );
    name.map_or_else(
        || format!("SQLITE_UNKNOWN_ERROR_CODE({code})"),
        str::to_owned,
    )
}

/// The name of an extended result code, for those workerd's `namedExtendedErrorCode` knows.
fn extended_code_name(code: i32) -> Option<&'static str> {
    code_names!(code;
        SQLITE_ABORT_ROLLBACK, SQLITE_AUTH_USER, SQLITE_BUSY_RECOVERY, SQLITE_BUSY_SNAPSHOT,
        SQLITE_BUSY_TIMEOUT, SQLITE_CANTOPEN_CONVPATH, SQLITE_CANTOPEN_DIRTYWAL,
        SQLITE_CANTOPEN_FULLPATH, SQLITE_CANTOPEN_ISDIR, SQLITE_CANTOPEN_NOTEMPDIR,
        SQLITE_CANTOPEN_SYMLINK, SQLITE_CONSTRAINT_CHECK, SQLITE_CONSTRAINT_COMMITHOOK,
        SQLITE_CONSTRAINT_DATATYPE, SQLITE_CONSTRAINT_FOREIGNKEY, SQLITE_CONSTRAINT_FUNCTION,
        SQLITE_CONSTRAINT_NOTNULL, SQLITE_CONSTRAINT_PINNED, SQLITE_CONSTRAINT_PRIMARYKEY,
        SQLITE_CONSTRAINT_ROWID, SQLITE_CONSTRAINT_TRIGGER, SQLITE_CONSTRAINT_UNIQUE,
        SQLITE_CONSTRAINT_VTAB, SQLITE_CORRUPT_INDEX, SQLITE_CORRUPT_SEQUENCE, SQLITE_CORRUPT_VTAB,
        SQLITE_ERROR_MISSING_COLLSEQ, SQLITE_ERROR_RETRY, SQLITE_ERROR_SNAPSHOT,
        SQLITE_IOERR_ACCESS, SQLITE_IOERR_AUTH, SQLITE_IOERR_BEGIN_ATOMIC, SQLITE_IOERR_BLOCKED,
        SQLITE_IOERR_CHECKRESERVEDLOCK, SQLITE_IOERR_CLOSE, SQLITE_IOERR_COMMIT_ATOMIC,
        SQLITE_IOERR_CONVPATH, SQLITE_IOERR_CORRUPTFS, SQLITE_IOERR_DATA, SQLITE_IOERR_DELETE,
        SQLITE_IOERR_DELETE_NOENT, SQLITE_IOERR_DIR_CLOSE, SQLITE_IOERR_DIR_FSYNC,
        SQLITE_IOERR_FSTAT, SQLITE_IOERR_FSYNC, SQLITE_IOERR_GETTEMPPATH, SQLITE_IOERR_LOCK,
        SQLITE_IOERR_MMAP, SQLITE_IOERR_NOMEM, SQLITE_IOERR_RDLOCK, SQLITE_IOERR_READ,
        SQLITE_IOERR_ROLLBACK_ATOMIC, SQLITE_IOERR_SEEK, SQLITE_IOERR_SHMLOCK,
        SQLITE_IOERR_SHMMAP, SQLITE_IOERR_SHMOPEN, SQLITE_IOERR_SHMSIZE, SQLITE_IOERR_SHORT_READ,
        SQLITE_IOERR_TRUNCATE, SQLITE_IOERR_UNLOCK, SQLITE_IOERR_VNODE, SQLITE_IOERR_WRITE,
        SQLITE_LOCKED_SHAREDCACHE, SQLITE_LOCKED_VTAB, SQLITE_NOTICE_RECOVER_ROLLBACK,
        SQLITE_NOTICE_RECOVER_WAL, SQLITE_OK_LOAD_PERMANENTLY, SQLITE_READONLY_CANTINIT,
        SQLITE_READONLY_CANTLOCK, SQLITE_READONLY_DBMOVED, SQLITE_READONLY_DIRECTORY,
        SQLITE_READONLY_RECOVERY, SQLITE_READONLY_ROLLBACK, SQLITE_WARNING_AUTOINDEX,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::storage::sql_limits;

    /// A connection configured like an object's: limits, policy, a `_cf_KV` table the storage
    /// layer created in internal mode, and a user table `t`.
    fn connection() -> (Connection, AuthorizerState) {
        let conn = Connection::open_in_memory().unwrap();
        sql_limits::apply(&conn).unwrap();
        let state = AuthorizerState::default();
        install(&conn, state.clone()).unwrap();
        internal(&conn, &state, |conn| {
            conn.execute_batch(
                "CREATE TABLE _cf_KV(key TEXT PRIMARY KEY, value BLOB) WITHOUT ROWID;
                 INSERT INTO _cf_KV VALUES ('secret', x'00');",
            )
        })
        .unwrap();
        conn.execute_batch(
            "CREATE TABLE t(id INTEGER PRIMARY KEY, a, b); INSERT INTO t VALUES (1, 2, 3);",
        )
        .unwrap();
        (conn, state)
    }

    fn internal<T>(
        conn: &Connection,
        state: &AuthorizerState,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> rusqlite::Result<T> {
        state.set_internal(true);
        let result = f(conn);
        state.set_internal(false);
        result
    }

    /// Runs every statement of user SQL, reporting failures the way workerd words them.
    fn run(conn: &Connection, sql: &str) -> Result<(), String> {
        conn.execute_batch(sql)
            .map_err(|e| sqlite_error_message(&e))
    }

    fn assert_not_authorized(conn: &Connection, sql: &str) {
        assert_eq!(
            run(conn, sql),
            Err("not authorized: SQLITE_AUTH".to_owned()),
            "{sql}"
        );
    }

    fn column(conn: &Connection, sql: &str, index: usize) -> Vec<String> {
        let mut stmt = conn.prepare(sql).unwrap();
        let rows = stmt.query_map([], |row| row.get(index)).unwrap();
        rows.collect::<rusqlite::Result<_>>().unwrap()
    }

    #[test]
    fn reserved_names_start_with_cf_in_any_case() {
        assert!(is_reserved_name("_cf_KV"));
        assert!(is_reserved_name("_CF_kv"));
        assert!(is_reserved_name("_cf_"));
        assert!(!is_reserved_name("_cf"));
        assert!(!is_reserved_name("cf_x"));
        assert!(!is_reserved_name("x_cf_"));
        assert!(!is_reserved_name("é_cf_"));
        assert!(!is_reserved_name(""));
    }

    #[test]
    fn reserved_tables_cannot_be_created() {
        let (conn, _) = connection();
        assert_not_authorized(&conn, "CREATE TABLE _cf_x(a)");
        assert_not_authorized(&conn, "CREATE TABLE _CF_Other(a)");
        assert_not_authorized(&conn, "CREATE TABLE main._cf_x(a)");
        assert_not_authorized(&conn, "CREATE TABLE _cf_copy AS SELECT * FROM t");
        assert_not_authorized(&conn, "CREATE VIEW _cf_v AS SELECT 1");
        assert_not_authorized(&conn, "CREATE VIRTUAL TABLE _cf_f USING fts5(x)");
    }

    #[test]
    fn reserved_tables_cannot_be_read() {
        let (conn, _) = connection();
        let prohibited = "access to _cf_KV.key is prohibited: SQLITE_AUTH";
        assert_eq!(
            run(&conn, "SELECT * FROM _cf_KV"),
            Err(prohibited.to_owned())
        );
        assert_eq!(
            run(&conn, "SELECT key FROM _CF_kv"),
            Err(prohibited.to_owned())
        );
        assert_eq!(
            run(
                &conn,
                "SELECT count(*) FROM t WHERE a IN (SELECT key FROM _cf_KV)"
            ),
            Err(prohibited.to_owned())
        );
        // A view or trigger over a reserved table is checked when it is used.
        run(&conn, "CREATE VIEW peek AS SELECT key FROM _cf_KV").unwrap();
        assert_eq!(run(&conn, "SELECT * FROM peek"), Err(prohibited.to_owned()));
    }

    #[test]
    fn reserved_tables_cannot_be_written() {
        let (conn, _) = connection();
        assert_not_authorized(&conn, "INSERT INTO _CF_kv VALUES ('k', x'01')");
        assert_not_authorized(&conn, "DELETE FROM _cf_KV");
        assert_eq!(
            run(&conn, "UPDATE _cf_KV SET value = x'02'"),
            Err("not authorized: SQLITE_AUTH".to_owned())
        );
        assert_not_authorized(&conn, "DROP TABLE _cf_KV");
        run(
            &conn,
            "CREATE TRIGGER leak AFTER INSERT ON t BEGIN INSERT INTO _cf_KV VALUES ('x', x'00'); END",
        )
        .unwrap();
        assert_not_authorized(&conn, "INSERT INTO t VALUES (2, 0, 0)");
    }

    #[test]
    fn reserved_tables_cannot_be_altered_indexed_or_triggered() {
        let (conn, _) = connection();
        assert_not_authorized(&conn, "ALTER TABLE _cf_KV ADD COLUMN c");
        assert_not_authorized(&conn, "ALTER TABLE _cf_KV RENAME TO mine");
        assert_not_authorized(&conn, "CREATE INDEX i ON _cf_KV(value)");
        assert_not_authorized(&conn, "CREATE INDEX _cf_i ON t(a)");
        assert_not_authorized(
            &conn,
            "CREATE TRIGGER _cf_t AFTER INSERT ON t BEGIN SELECT 1; END",
        );
        assert_not_authorized(
            &conn,
            "CREATE TRIGGER tr AFTER INSERT ON _cf_KV BEGIN SELECT 1; END",
        );
        // SQLite authorizes REINDEX per index, and the indexes SQLite makes for a reserved
        // table's keys are named `sqlite_autoindex__cf_...`, so rebuilding them is allowed, as in
        // workerd. It reads and changes no row.
        run(&conn, "REINDEX _cf_KV").unwrap();
    }

    #[test]
    fn renames_into_reserved_names_are_denied() {
        let (conn, _) = connection();
        // The authorizer cannot see the new name, so SQLite alone would accept the statement.
        conn.prepare("ALTER TABLE t RENAME TO _cf_y").unwrap();
        let not_authorized = Err("not authorized: SQLITE_AUTH".to_owned());
        for sql in [
            "ALTER TABLE t RENAME TO _cf_y",
            "alter table main.t rename to \"_CF_KV\"",
            "-- sneaky\nALTER TABLE t RENAME TO [_cf_y]",
        ] {
            assert_eq!(
                check_rename(sql).map_err(|e| sqlite_error_message(&e)),
                not_authorized,
                "{sql}"
            );
        }
        check_rename("ALTER TABLE t RENAME TO renamed").unwrap();
        check_rename("ALTER TABLE t RENAME COLUMN a TO _cf_a").unwrap();
        check_rename("SELECT 1").unwrap();
    }

    #[test]
    fn ordinary_schema_changes_are_allowed() {
        let (conn, _) = connection();
        run(
            &conn,
            "CREATE INDEX t_a ON t(a);
             CREATE UNIQUE INDEX t_b ON t(b) WHERE b IS NOT NULL;
             CREATE VIEW v AS SELECT a FROM t;
             CREATE TRIGGER tr AFTER INSERT ON t BEGIN UPDATE t SET b = new.a WHERE id = new.id; END;
             INSERT INTO t VALUES (2, 5, NULL);
             ALTER TABLE t ADD COLUMN c INTEGER NOT NULL DEFAULT 0 CHECK (c >= 0);
             ALTER TABLE t RENAME COLUMN c TO d;
             ALTER TABLE t DROP COLUMN d;
             ALTER TABLE t RENAME TO u;
             ANALYZE;
             REINDEX t_a;
             DROP TRIGGER tr;
             DROP VIEW v;
             DROP INDEX t_a;
             DROP TABLE u;",
        )
        .unwrap();
    }

    #[test]
    fn reserved_tables_are_listed_but_not_described() {
        let (conn, _) = connection();
        assert!(column(&conn, "PRAGMA table_list", 1).contains(&"_cf_KV".to_owned()));
        assert!(column(&conn, "SELECT name FROM sqlite_master", 0).contains(&"_cf_KV".to_owned()));
        assert_eq!(column(&conn, "PRAGMA table_info(t)", 1), ["id", "a", "b"]);
        assert_eq!(
            column(&conn, "SELECT name FROM pragma_table_xinfo('t')", 0),
            ["id", "a", "b"]
        );
        assert_not_authorized(&conn, "PRAGMA table_info(_cf_KV)");
        assert_not_authorized(&conn, "PRAGMA table_info(_CF_KV)");
        assert_not_authorized(&conn, "PRAGMA table_xinfo('_cf_KV')");
        assert_not_authorized(&conn, "SELECT * FROM pragma_table_info('_cf_KV')");
        assert_not_authorized(&conn, "PRAGMA index_list(_cf_KV)");
        assert_not_authorized(&conn, "PRAGMA foreign_key_check(_cf_KV)");
        assert_not_authorized(&conn, "PRAGMA quick_check(_cf_KV)");
    }

    #[test]
    fn allowlisted_pragmas_run() {
        let (conn, _) = connection();
        run(
            &conn,
            "CREATE INDEX t_a ON t(a);
             PRAGMA foreign_keys = ON;
             PRAGMA foreign_keys = 'off';
             PRAGMA foreign_keys;
             PRAGMA defer_foreign_keys = true;
             PRAGMA case_sensitive_like = 0;
             PRAGMA ignore_check_constraints = no;
             PRAGMA legacy_alter_table = FALSE;
             PRAGMA recursive_triggers = yes;
             PRAGMA reverse_unordered_selects = 1;
             PRAGMA data_version;
             PRAGMA page_size;
             PRAGMA table_list;
             PRAGMA table_list(t);
             PRAGMA foreign_key_check;
             PRAGMA foreign_key_check(t);
             PRAGMA foreign_key_list(t);
             PRAGMA index_list(t);
             PRAGMA index_info(t_a);
             PRAGMA index_xinfo(t_a);
             PRAGMA quick_check;
             PRAGMA quick_check(10);
             PRAGMA quick_check(t);
             PRAGMA optimize;
             PRAGMA optimize(0x10002);
             PRAGMA optimize = -1;
             PRAGMA main.foreign_keys = 1;",
        )
        .unwrap();
    }

    #[test]
    fn other_pragmas_and_arguments_are_denied() {
        let (conn, _) = connection();
        for sql in [
            "PRAGMA user_version",
            "PRAGMA user_version = 3",
            "SELECT * FROM pragma_user_version",
            "PRAGMA journal_mode = DELETE",
            "PRAGMA writable_schema = ON",
            "PRAGMA integrity_check",
            "PRAGMA function_list",
            "PRAGMA compile_options",
            "PRAGMA page_size = 8192",
            "PRAGMA data_version = 1",
            "PRAGMA foreign_keys = maybe",
            "PRAGMA foreign_keys = -1",
            "PRAGMA table_info",
            "PRAGMA index_list",
            "PRAGMA optimize(0x100000000)",
            "PRAGMA optimize(fast)",
            // workerd compares pragma names exactly, and SQLite passes them on as written.
            "PRAGMA FOREIGN_KEYS = ON",
            "PRAGMA temp.foreign_keys",
        ] {
            assert_not_authorized(&conn, sql);
        }
    }

    #[test]
    fn boolean_pragma_values_follow_workerd() {
        for value in [
            "1",
            "0",
            "on",
            "OFF",
            "True",
            "false",
            "yes",
            "NO",
            "'on'",
            "\"1\"",
            "10",
            "yesterday",
        ] {
            assert!(is_boolean(value), "{value}");
        }
        for value in ["", "2", "-1", "maybe", "t", "'on", "y"] {
            assert!(!is_boolean(value), "{value}");
        }
    }

    #[test]
    fn pragma_integers_follow_workerd() {
        assert_eq!(parse_integer("42"), Some(42));
        assert_eq!(parse_integer("-7"), Some(-7));
        assert_eq!(parse_integer("+7"), Some(7));
        assert_eq!(parse_integer("0x10002"), Some(0x10002));
        assert_eq!(parse_integer("0XfF"), Some(255));
        for text in [
            "",
            "-",
            "0x",
            "1.5",
            "1e3",
            "ten",
            " 1",
            "--1",
            "0x-1",
            "99999999999999999999",
        ] {
            assert_eq!(parse_integer(text), None, "{text}");
        }
    }

    #[test]
    fn transaction_statements_are_denied_with_cloudflares_message() {
        let (conn, state) = connection();
        for sql in [
            "BEGIN",
            "BEGIN IMMEDIATE TRANSACTION",
            "COMMIT",
            "END TRANSACTION",
            "ROLLBACK",
            "SAVEPOINT x",
            "SAVEPOINT _cf_x",
            "RELEASE x",
            "ROLLBACK TO x",
        ] {
            assert_not_authorized(&conn, sql);
            let denial = state.take_denial();
            assert_eq!(denial, Some(Denial::TransactionStatement), "{sql}");
            assert_eq!(denial.unwrap().message(), TRANSACTION_STATEMENT_MESSAGE);
            // Taking the denial clears it.
            assert_eq!(state.take_denial(), None);
        }
        // Other denials leave nothing to take.
        assert_not_authorized(&conn, "CREATE TABLE _cf_x(a)");
        assert_eq!(state.take_denial(), None);
    }

    #[test]
    fn transaction_message_is_cloudflares() {
        assert_eq!(
            TRANSACTION_STATEMENT_MESSAGE,
            "To execute a transaction, please use the state.storage.transaction() or state.storage.transactionSync() APIs instead of the SQL BEGIN TRANSACTION or SAVEPOINT statements. The JavaScript API is safer because it will automatically roll back on exceptions, and because it interacts correctly with Durable Objects' automatic atomic write coalescing."
        );
    }

    #[test]
    fn other_databases_and_temp_objects_are_denied() {
        let (conn, _) = connection();
        assert_not_authorized(&conn, "ATTACH ':memory:' AS other");
        assert_not_authorized(&conn, "DETACH other");
        assert_not_authorized(&conn, "CREATE TEMP TABLE scratch(a)");
        assert_not_authorized(&conn, "CREATE TABLE temp.scratch(a)");
        assert_not_authorized(&conn, "CREATE TEMP VIEW tv AS SELECT 1");
        assert_not_authorized(
            &conn,
            "CREATE TEMP TRIGGER tt AFTER INSERT ON t BEGIN SELECT 1; END",
        );
        // Reading SQLite's own temp schema table is harmless, as in workerd.
        run(&conn, "SELECT * FROM sqlite_temp_master").unwrap();
    }

    #[test]
    fn only_fts5_and_rtree_virtual_tables_can_be_created() {
        let (conn, _) = connection();
        run(
            &conn,
            "CREATE VIRTUAL TABLE docs USING fts5(body);
             CREATE VIRTUAL TABLE terms USING fts5vocab(docs, row);
             CREATE VIRTUAL TABLE shouty USING FTS5(body);
             CREATE VIRTUAL TABLE boxes USING rtree(id, min_x, max_x);
             CREATE VIRTUAL TABLE int_boxes USING rtree_i32(id, min_x, max_x);
             INSERT INTO docs VALUES ('hello world');
             INSERT INTO boxes VALUES (1, 0, 10);
             INSERT INTO int_boxes VALUES (1, 0, 10);",
        )
        .unwrap();
        let snippets = column(
            &conn,
            "SELECT snippet(docs, 0, '[', ']', '', 5) FROM docs WHERE docs MATCH 'hello' ORDER BY bm25(docs)",
            0,
        );
        assert_eq!(snippets, ["[hello] world"]);
        assert_eq!(
            column(
                &conn,
                "SELECT highlight(docs, 0, '<', '>') FROM docs('world')",
                0
            ),
            ["hello <world>"]
        );
        assert_eq!(
            column(&conn, "SELECT term FROM terms", 0),
            ["hello", "world"]
        );
        assert_eq!(column(&conn, "SELECT rtreecheck('boxes')", 0), ["ok"]);
        run(&conn, "DROP TABLE docs; DROP TABLE boxes").unwrap();

        for module in ["dbstat", "fts4", "fts3", "geopoly", "csv"] {
            assert_not_authorized(&conn, &format!("CREATE VIRTUAL TABLE v USING {module}"));
        }
        // dbstat also exists without CREATE VIRTUAL TABLE; like workerd's SQLite, ours has none.
        assert_eq!(
            run(&conn, "SELECT * FROM dbstat"),
            Err("no such table: dbstat: SQLITE_ERROR".to_owned())
        );
    }

    #[test]
    fn allowlisted_functions_run() {
        let (conn, _) = connection();
        let value = |sql: &str| {
            conn.query_row(sql, [], |row| row.get::<_, String>(0))
                .unwrap()
        };
        assert_eq!(value(r#"SELECT json_extract('{"a":"x"}', '$.a')"#), "x");
        assert_eq!(value(r#"SELECT '{"a":[1,"y"]}' ->> '$.a[1]'"#), "y");
        assert_eq!(
            value(r#"SELECT json(jsonb_set(jsonb('{"a":1}'), '$.b', 2))"#),
            r#"{"a":1,"b":2}"#
        );
        assert_eq!(
            value("SELECT group_concat(value) FROM json_each('[1,2,3]')"),
            "1,2,3"
        );
        assert_eq!(value("SELECT printf('%d-%s', abs(-4), upper('x'))"), "4-X");
        assert_eq!(value("SELECT date('2024-01-31', '+1 day')"), "2024-02-01");
        assert_eq!(
            value("SELECT group_concat(r) FROM (SELECT row_number() OVER () AS r FROM t)"),
            "1"
        );
        assert_eq!(value("SELECT concat_ws('/', 'a', 'b')"), "a/b");
    }

    #[test]
    fn other_functions_are_denied() {
        let (conn, _) = connection();
        for (function, call) in [
            ("sqlite_version", "sqlite_version()"),
            ("sqlite_source_id", "sqlite_source_id()"),
            (
                "sqlite_compileoption_used",
                "sqlite_compileoption_used('RTREE')",
            ),
            ("if", "if(1, 'a', 'b')"),
            ("unistr", "unistr('a')"),
            ("json_pretty", "json_pretty('[]')"),
            ("json_error_position", "json_error_position('[')"),
        ] {
            let error = run(&conn, &format!("SELECT {call}")).unwrap_err();
            assert_eq!(
                error,
                format!("not authorized to use function: {function} at offset 7: SQLITE_ERROR")
            );
        }
        // load_extension passes the allowlist, as in workerd, but stays disabled in SQLite.
        assert_eq!(
            run(&conn, "SELECT load_extension('x')"),
            Err("not authorized: SQLITE_ERROR".to_owned())
        );
    }

    #[test]
    fn internal_mode_allows_everything() {
        let (conn, state) = connection();
        internal(&conn, &state, |conn| {
            let value: Vec<u8> =
                conn.query_row("SELECT value FROM _cf_KV WHERE key = 'secret'", [], |r| {
                    r.get(0)
                })?;
            assert_eq!(value, [0]);
            conn.execute_batch(
                "SAVEPOINT s;
                 INSERT INTO _cf_KV VALUES ('k', x'01');
                 RELEASE s;
                 BEGIN; UPDATE _cf_KV SET value = x'02'; COMMIT;
                 CREATE TABLE _cf_METADATA(key INTEGER PRIMARY KEY, value BLOB);
                 PRAGMA user_version;",
            )
        })
        .unwrap();
        assert_eq!(state.take_denial(), None);
        // Back in user mode the policy applies again.
        assert_not_authorized(&conn, "INSERT INTO _cf_METADATA VALUES (1, x'00')");
    }

    #[test]
    fn re_preparing_during_step_runs_the_policy_again() {
        // Why the storage layer keeps internal mode on while stepping its own statements.
        let (conn, state) = connection();
        let read_kv = |conn: &Connection| {
            let mut stmt = conn.prepare_cached("SELECT count(*) FROM _cf_KV")?;
            stmt.query_row([], |row| row.get::<_, i64>(0))
        };
        assert_eq!(internal(&conn, &state, read_kv).unwrap(), 1);
        // User SQL changes the schema, so the cached statement must be re-prepared when stepped.
        run(&conn, "CREATE TABLE later(x)").unwrap();
        let error = read_kv(&conn).unwrap_err();
        assert_eq!(sqlite_error_message(&error), "not authorized: SQLITE_AUTH");
        assert_eq!(internal(&conn, &state, read_kv).unwrap(), 1);
    }

    #[test]
    fn install_replaces_the_previous_state() {
        let (conn, first) = connection();
        let second = AuthorizerState::default();
        install(&conn, second.clone()).unwrap();
        // Only the newly installed state now governs the connection.
        first.set_internal(true);
        assert_not_authorized(&conn, "DELETE FROM _cf_KV");
        second.set_internal(true);
        run(&conn, "DELETE FROM _cf_KV").unwrap();
    }

    #[test]
    fn the_state_lives_as_long_as_the_connection() {
        let (conn, state) = connection();
        // One clone here, one owned by the connection.
        assert_eq!(Arc::strong_count(&state.shared), 2);
        drop(conn);
        assert_eq!(Arc::strong_count(&state.shared), 1);
    }

    #[test]
    fn errors_are_formatted_like_workerd() {
        let (conn, _) = connection();
        let message = |sql: &str| run(&conn, sql).unwrap_err();
        assert_eq!(
            message("SELEC 1"),
            "near \"SELEC\": syntax error at offset 0: SQLITE_ERROR"
        );
        assert_eq!(
            message("SELECT nope FROM t"),
            "no such column: nope at offset 7: SQLITE_ERROR"
        );
        assert_eq!(
            message("INSERT INTO t VALUES (1, 0, 0)"),
            "UNIQUE constraint failed: t.id: SQLITE_CONSTRAINT (extended: SQLITE_CONSTRAINT_PRIMARYKEY)"
        );
        run(
            &conn,
            "CREATE TABLE u(x UNIQUE, y NOT NULL, z CHECK (z > 0)); INSERT INTO u VALUES (1, 1, 1)",
        )
        .unwrap();
        assert_eq!(
            message("INSERT INTO u VALUES (1, 1, 1)"),
            "UNIQUE constraint failed: u.x: SQLITE_CONSTRAINT (extended: SQLITE_CONSTRAINT_UNIQUE)"
        );
        assert_eq!(
            message("INSERT INTO u VALUES (2, NULL, 1)"),
            "NOT NULL constraint failed: u.y: SQLITE_CONSTRAINT (extended: SQLITE_CONSTRAINT_NOTNULL)"
        );
        assert_eq!(
            message("INSERT INTO u VALUES (3, 1, 0)"),
            "CHECK constraint failed: z > 0: SQLITE_CONSTRAINT (extended: SQLITE_CONSTRAINT_CHECK)"
        );
        assert_eq!(
            message("SELECT zeroblob(2200001)"),
            "string or blob too big: SQLITE_TOOBIG"
        );
        assert_eq!(message("BEGIN"), "not authorized: SQLITE_AUTH");
    }

    #[test]
    fn formats_errors_without_a_message_or_from_rusqlite() {
        let bare = rusqlite::Error::SqliteFailure(ffi::Error::new(ffi::SQLITE_BUSY), None);
        assert_eq!(
            sqlite_error_message(&bare),
            "database is locked: SQLITE_BUSY"
        );
        let unknown =
            rusqlite::Error::SqliteFailure(ffi::Error::new(ffi::SQLITE_IOERR | (99 << 8)), None);
        assert!(sqlite_error_message(&unknown).ends_with(": SQLITE_IOERR"));
        let odd = rusqlite::Error::SqliteFailure(ffi::Error::new(250), Some("odd".to_owned()));
        assert_eq!(
            sqlite_error_message(&odd),
            "odd: SQLITE_UNKNOWN_ERROR_CODE(250)"
        );
        let count = rusqlite::Error::InvalidParameterCount(1, 2);
        assert_eq!(sqlite_error_message(&count), count.to_string());
    }
}

//! A crash's addresses, resolved to functions and source lines.
//!
//! The kernel prints a backtrace when it panics or takes a CPU exception: one line per frame,
//! `backtrace: #N 0xADDR`, each a return address, after the line naming the faulting
//! instruction (`CPU exception ... at RIP 0xADDR ...`). [`Symbolizer::annotate`] turns such a
//! line into the lines to print under it, one per function at that address (inlined ones
//! first), `    FUNCTION at FILE:LINE`, from the image's unstripped copy ([`debug_path`]).

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use object::{Object, ObjectSection, ObjectSymbol};

/// The prefix of a backtrace line.
pub const BACKTRACE: &str = "backtrace: #";

/// Where the unstripped copy of `image` (symbols and line tables) is kept: `IMAGE.debug`.
pub fn debug_path(image: &Path) -> PathBuf {
    let mut name = image.as_os_str().to_os_string();
    name.push(".debug");
    PathBuf::from(name)
}

/// What a console line says about a code address: a return address in a backtrace line, or the
/// faulting instruction of a CPU exception.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Address {
    /// `backtrace: #N 0xADDR`: a return address, just after the call.
    Return(u64),
    /// `... at RIP 0xADDR ...`: the instruction itself.
    Exact(u64),
}

impl Address {
    /// The address of the line a console line names, if it names one.
    pub fn parse(line: &str) -> Option<Self> {
        let hex = |s: &str| {
            let digits = s.strip_prefix("0x")?;
            let end = digits.find(|c: char| !c.is_ascii_hexdigit()).unwrap_or(digits.len());
            u64::from_str_radix(&digits[..end], 16).ok()
        };
        if let Some(rest) = line.strip_prefix(BACKTRACE) {
            let (n, addr) = rest.split_once(' ')?;
            n.parse::<u32>().ok()?;
            return hex(addr).map(Address::Return);
        }
        if line.starts_with("CPU exception ") {
            let (_, at) = line.split_once(" at RIP ")?;
            return hex(at).map(Address::Exact);
        }
        None
    }

    /// The address to look up: inside the call instruction for a return address (which may be
    /// the first byte of the next line, or of the next function).
    fn probe(self) -> u64 {
        match self {
            Address::Return(a) => a.saturating_sub(1),
            Address::Exact(a) => a,
        }
    }
}

type Reader = gimli::EndianArcSlice<gimli::RunTimeEndian>;

/// The line tables and symbols of an unstripped image.
struct Tables {
    lines: addr2line::Context<Reader>,
    /// `(start, end, name)` of every function symbol, by start.
    symbols: Vec<(u64, u64, String)>,
}

impl Tables {
    fn load(path: &Path) -> Result<Self, String> {
        let data = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let file = object::File::parse(&*data).map_err(|e| format!("{}: {e}", path.display()))?;
        let endian =
            if file.is_little_endian() { gimli::RunTimeEndian::Little } else { gimli::RunTimeEndian::Big };
        let dwarf = gimli::Dwarf::load(|id| -> Result<Reader, gimli::Error> {
            let bytes = file.section_by_name(id.name()).and_then(|s| s.data().ok()).unwrap_or_default();
            Ok(Reader::new(Arc::from(bytes), endian))
        })
        .map_err(|e| format!("{}: {e}", path.display()))?;
        let lines = addr2line::Context::from_dwarf(dwarf).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut symbols: Vec<(u64, u64, String)> = file
            .symbols()
            .filter(|s| s.kind() == object::SymbolKind::Text)
            .filter_map(|s| Some((s.address(), s.address() + s.size().max(1), s.name().ok()?.to_string())))
            .collect();
        symbols.sort();
        Ok(Self { lines, symbols })
    }

    /// `FUNCTION at FILE:LINE` for each function at `probe`, inlined ones first; the symbol
    /// around it where there are no line tables (assembly).
    fn describe(&self, probe: u64, root: &Path) -> Vec<String> {
        let mut out = Vec::new();
        let symbol = self.symbol(probe);
        if let Ok(mut frames) = self.lines.find_frames(probe).skip_all_loads() {
            let mut frames = std::iter::from_fn(|| frames.next().ok().flatten()).peekable();
            while let Some(frame) = frames.next() {
                // Line tables name a function without its path: the symbol's name is the whole
                // one, for the function the code is in (the last frame; the others are inlined).
                let inlined = frames.peek().is_some();
                let dwarf = frame.function.as_ref().and_then(|f| f.demangle().ok());
                let name = match (&symbol, dwarf) {
                    (Some((name, _)), _) if !inlined => name.clone(),
                    (_, Some(name)) => without_generics(&name),
                    _ => "??".into(),
                };
                let at = match frame.location {
                    Some(addr2line::Location { file: Some(file), line, .. }) => {
                        let file = Path::new(file).strip_prefix(root).unwrap_or(Path::new(file));
                        match line {
                            Some(line) => format!(" at {}:{line}", file.display()),
                            None => format!(" at {}", file.display()),
                        }
                    }
                    _ => String::new(),
                };
                out.push(format!("{name}{at}"));
            }
        }
        if out.is_empty()
            && let Some((name, offset)) = symbol
        {
            out.push(format!("{name}+{offset:#x}"));
        }
        out
    }

    /// The demangled name (without its hash) of the function symbol around `probe`, and the
    /// offset into it.
    fn symbol(&self, probe: u64) -> Option<(String, u64)> {
        let i = self.symbols.partition_point(|(start, _, _)| *start <= probe).checked_sub(1)?;
        let (start, end, name) = &self.symbols[i];
        (probe < *end).then(|| (format!("{:#}", rustc_demangle::demangle(name)), probe - start))
    }
}

/// `name` without its generic arguments (`block_on<T, F>` as `block_on`), which can run to
/// hundreds of characters for futures; a leading `<T as Trait>` stays.
fn without_generics(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut depth = 0;
    for c in name.chars() {
        match c {
            '<' if depth > 0 || out.ends_with(|p: char| p.is_alphanumeric() || p == '_' || p == '}') => {
                depth += 1
            }
            '>' if depth > 0 => depth -= 1,
            _ if depth > 0 => {}
            _ => out.push(c),
        }
    }
    out
}

/// Resolves the addresses of one image's crash output, loading its unstripped copy the first
/// time a line needs it.
pub struct Symbolizer {
    debug: PathBuf,
    root: PathBuf,
    tables: OnceLock<Result<Tables, String>>,
}

impl Symbolizer {
    /// For `image`, whose unstripped copy is [`debug_path`]`(image)`. File names are shown
    /// relative to the workspace (the directory above the `target` one the image is in).
    pub fn new(image: &Path) -> Self {
        // The workspace: above the `target` directory the image is in (else the current one).
        let cwd = std::env::current_dir().unwrap_or_default();
        let root = cwd
            .join(image)
            .ancestors()
            .find(|d| d.file_name().is_some_and(|n| n == "target"))
            .and_then(Path::parent)
            .map_or(cwd.clone(), Path::to_path_buf);
        Self { debug: debug_path(image), root, tables: OnceLock::new() }
    }

    /// The lines to print under console line `line`: what its address resolves to, indented;
    /// none for a line that names no address, and one saying why where the copy is missing.
    pub fn annotate(&self, line: &str) -> Vec<String> {
        let Some(addr) = Address::parse(line) else { return Vec::new() };
        match self.tables.get_or_init(|| Tables::load(&self.debug)) {
            Ok(tables) => {
                tables.describe(addr.probe(), &self.root).into_iter().map(|d| format!("    {d}")).collect()
            }
            // Said once, under the first line that needed it.
            Err(why) if matches!(addr, Address::Exact(_)) || line.starts_with("backtrace: #0 ") => {
                vec![format!("    (not symbolized: {why})")]
            }
            Err(_) => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backtrace_and_exception_lines_parse() {
        assert_eq!(Address::parse("backtrace: #0 0x10a3f2"), Some(Address::Return(0x10a3f2)));
        assert_eq!(
            Address::parse("backtrace: #31 0xffffffff81000000"),
            Some(Address::Return(0xffffffff81000000))
        );
        assert_eq!(
            Address::parse(
                "CPU exception 14 (page fault), error code 0x0, at RIP 0x1042ab (RSP 0x13ff80, CR2 0x1)"
            ),
            Some(Address::Exact(0x1042ab))
        );
        for not in [
            "backtrace: #x 0x10",
            "backtrace: #1 10",
            "backtrace: #1 0x",
            "[ 0.1] INFO backtrace: #0 0x1",
            "",
        ] {
            assert_eq!(Address::parse(not), None, "{not:?}");
        }
        assert_eq!(Address::Return(0x1000).probe(), 0xfff, "inside the call, not after it");
        assert_eq!(Address::Exact(0x1000).probe(), 0x1000);
    }

    #[test]
    fn long_generic_names_are_cut() {
        assert_eq!(without_generics("block_on<morgana_rt::T<u8>, F>"), "block_on");
        assert_eq!(without_generics("{closure#1}<conformance::image::X>"), "{closure#1}");
        assert_eq!(without_generics("<T as core::ops::Drop>::drop"), "<T as core::ops::Drop>::drop");
    }

    #[test]
    fn the_copy_is_named_after_the_image() {
        assert_eq!(debug_path(Path::new("t/release-small/hello")), Path::new("t/release-small/hello.debug"));
    }

    /// This test binary has line tables (a dev build): this function's address (at link time:
    /// the binary is position-independent) resolves to its name and this file.
    #[test]
    #[inline(never)]
    fn an_address_resolves_to_its_function_and_line() {
        let exe = std::env::current_exe().unwrap();
        let tables = Tables::load(&exe).unwrap_or_else(|e| panic!("{e}"));
        let name = "an_address_resolves_to_its_function_and_line";
        let whole = format!("morgana_qemu::symbolize::tests::{name}");
        let linked = tables
            .symbols
            .iter()
            .find(|(_, _, n)| format!("{:#}", rustc_demangle::demangle(n)) == whole)
            .map(|s| s.0);
        let lines = tables
            .describe(linked.expect("the test's own symbol") + 4, Path::new(env!("CARGO_MANIFEST_DIR")));
        let want = format!("{whole} at src/symbolize.rs:");
        assert!(lines.iter().any(|l| l.starts_with(&want)), "{want} in {lines:?}");
    }

    #[test]
    fn the_console_passes_through_with_a_note_where_the_copy_is_missing() {
        let console = b"[ 0.1] INFO hello\r\npanicked at x.rs:1:1: boom\r\nbacktrace: #0 0x100010\r\nbacktrace: #1 0x1000f0\r\n";
        let mut out = Vec::new();
        crate::relay(&console[..], &mut out, &Symbolizer::new(Path::new("/nonexistent/img"))).unwrap();
        let out = String::from_utf8(out).unwrap();
        let want = "backtrace: #0 0x100010\r\n    (not symbolized: cannot read /nonexistent/img.debug: ";
        assert!(out.starts_with("[ 0.1] INFO hello\r\npanicked at") && out.contains(want), "{out}");
        assert!(out.ends_with("backtrace: #1 0x1000f0\r\n"), "said once: {out}");
    }
}

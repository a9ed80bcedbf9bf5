//! The fast unwinder: steps from frame to frame with one cached rule per return address.

use core::sync::atomic::{AtomicU64, Ordering};

use peakprof::format::TRUNCATED_FRAME;
use peakprof::unwind::Rule;

use super::{modules, self_range, MAX_DEPTH};

const CACHE_BITS: u32 = 16;
/// Direct-mapped cache: each word is `pc << 16 | rule id`. x86-64 user addresses fit in 47
/// bits, so the word identifies its pc exactly and a racing reader either sees a whole
/// entry or another pc's (which it rejects): no locks on the hot path.
static CACHE: [AtomicU64; 1 << CACHE_BITS] = [const { AtomicU64::new(0) }; 1 << CACHE_BITS];

/// The distinct rules met so far that do not fit a cache word's code, encoded
/// ([`Rule::encode`]), indexed by id. Id 0 means "empty"; entries are written before any
/// cache word names them and never change afterwards.
static RULES: [AtomicU64; TABLE_IDS as usize] = [const { AtomicU64::new(0) }; TABLE_IDS as usize];
/// Number of ids handed out (under the module lock, on the miss path only).
static RULE_COUNT: AtomicU64 = AtomicU64::new(1);

#[inline]
fn slot(pc: u64) -> &'static AtomicU64 {
    &CACHE[(pc.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - CACHE_BITS)) as usize]
}

/// Empties the cache (a module was unloaded: its addresses may be reused).
pub fn clear_cache() {
    for w in CACHE.iter() {
        w.store(0, Ordering::Relaxed);
    }
}

/// The id of `rule`, adding it to the table if new. `None` when the table is full.
fn rule_id(rule: Rule) -> Option<u64> {
    let word = rule.encode();
    let n = RULE_COUNT.load(Ordering::Acquire);
    if let Some(i) = (1..n).find(|&i| RULES[i as usize].load(Ordering::Relaxed) == word) {
        return Some(i);
    }
    if n >= TABLE_IDS {
        return None;
    }
    RULES[n as usize].store(word, Ordering::Release);
    RULE_COUNT.store(n + 1, Ordering::Release);
    Some(n)
}

/// Rule codes above this are rules packed in the code itself; below, table ids.
const INLINE: u64 = 1 << 15;
/// Ids the table can hand out (codes 1..INLINE).
const TABLE_IDS: u64 = INLINE;

/// The 16-bit code of `rule` for a cache word. Nearly every call site's rule fits in 15
/// bits (stack-pointer or frame-pointer CFA with an offset under 2 KiB, frame pointer saved
/// within 512 bytes): those are packed in the word itself, so a hit costs one load. Others
/// get a table id.
fn rule_code(rule: Rule) -> Option<u64> {
    if let Rule::Simple {
        from_rbp,
        cfa_offset,
        rbp_offset,
    } = rule
    {
        let off8 = u64::from(cfa_offset / 8);
        let rbp8 = rbp_offset.map_or(Some(0), |o| {
            (o < 0 && o % 8 == 0 && -o / 8 < 64).then(|| (-o / 8) as u64)
        });
        if cfa_offset % 8 == 0 && (1..256).contains(&off8) {
            if let Some(rbp8) = rbp8 {
                return Some(INLINE | (u64::from(from_rbp) << 14) | (off8 << 6) | rbp8);
            }
        }
    }
    rule_id(rule)
}

/// The rule for a 16-bit code from a cache word; `None` for an empty code.
#[inline(always)]
fn decode_code(code: u64) -> Option<Rule> {
    if code & INLINE != 0 {
        let rbp8 = (code & 0x3f) as i32;
        return Some(Rule::Simple {
            from_rbp: code & (1 << 14) != 0,
            cfa_offset: ((code >> 6) & 0xff) as u32 * 8,
            rbp_offset: (rbp8 != 0).then_some(-rbp8 * 8),
        });
    }
    if code == 0 {
        return None;
    }
    Rule::decode(RULES[code as usize].load(Ordering::Acquire))
}

#[inline]
fn rule_at(pc: u64) -> Rule {
    if pc >> 48 != 0 {
        return Rule::Complex;
    }
    let w = slot(pc).load(Ordering::Acquire);
    if w >> 16 == pc {
        if let Some(r) = decode_code(w & 0xffff) {
            return r;
        }
    }
    // No unwind information (code without CFI, or outside any module): the walk ends
    // here, as it would in any unwinder.
    let (rule, code) = modules::with_rule(pc, |r| {
        let r = r.unwrap_or(Rule::End);
        (r, rule_code(r))
    });
    if let Some(code) = code {
        slot(pc).store((pc << 16) | code, Ordering::Release);
    }
    rule
}

extern "C" {
    fn peakprof_stack_bounds(lo: *mut usize, hi: *mut usize);
    fn peakprof_set_stack_bounds(lo: usize, hi: usize);
    /// Top of the main thread's stack at start-up (glibc, exported by ld.so).
    static __libc_stack_end: *mut libc::c_void;
}

/// Farthest a stack top may lie above the stack pointer before it is not believed.
const MAX_STACK: usize = 1 << 30;

/// The top of this thread's stack, found once per thread. Frames lie between the stack
/// pointer and it; reads outside are refused.
fn stack_top(sp: u64) -> Option<u64> {
    let (mut lo, mut hi) = (0usize, 0usize);
    // SAFETY: valid out-pointers; the C side only reads initial-exec thread-locals.
    unsafe { peakprof_stack_bounds(&mut lo, &mut hi) };
    if lo == 0 && hi == 0 {
        hi = find_stack_top().unwrap_or(1);
        // SAFETY: as above.
        unsafe { peakprof_set_stack_bounds(1, hi) };
    }
    let hi = hi as u64;
    (hi > sp && hi - sp < MAX_STACK as u64).then_some(hi)
}

/// Not `pthread_getattr_np`: it takes the thread's lock and mallocs, and the program may be
/// inside it already (Rust's runtime calls it at start-up), which would deadlock. The main
/// thread's frames lie below `__libc_stack_end`; glibc puts a thread's descriptor
/// (`pthread_self()`) at the top of its stack, above all its frames. System calls only.
fn find_stack_top() -> Option<usize> {
    // SAFETY: getpid and gettid have no preconditions.
    let main = unsafe { libc::syscall(libc::SYS_gettid) == i64::from(libc::getpid()) };
    let top = if main {
        // SAFETY: a plain read of a pointer-sized variable glibc sets before any user code.
        unsafe { __libc_stack_end as usize }
    } else {
        // SAFETY: pthread_self has no preconditions.
        unsafe { libc::pthread_self() as usize }
    };
    (top != 0).then_some(top)
}

#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn registers() -> (u64, u64, u64) {
    let (sp, bp, pc): (u64, u64, u64);
    // SAFETY: reads three registers; touches no memory.
    unsafe {
        core::arch::asm!(
            "mov {sp}, rsp",
            "mov {bp}, rbp",
            "lea {pc}, [rip]",
            sp = out(reg) sp,
            bp = out(reg) bp,
            pc = out(reg) pc,
            options(nomem, nostack, preserves_flags),
        );
    }
    (sp, bp, pc)
}

/// Reads a word of this thread's stack.
#[inline(always)]
fn read(addr: u64, lo: u64, hi: u64) -> Option<u64> {
    if addr < lo || addr.checked_add(8)? > hi || !addr.is_multiple_of(8) {
        return None;
    }
    // SAFETY: `[lo, hi)` is the part of this thread's stack between the current stack
    // pointer and its top, which is mapped and readable.
    Some(unsafe { (addr as *const u64).read() })
}

/// Captures with cached rules; `None` asks the caller to use the general unwinder.
#[cfg(target_arch = "x86_64")]
#[inline(never)]
pub fn capture(out: &mut [u64; MAX_DEPTH + 1]) -> Option<usize> {
    let (mut sp, mut bp, mut pc) = registers();
    // None on a signal stack or another foreign stack: the general unwinder copes.
    let hi = stack_top(sp)?;
    let lo = sp;
    let (self_lo, self_hi) = self_range();
    let mut n = 0;
    let mut first = true;
    let mut in_self = true;
    loop {
        // A return address points after the call; the rule in effect is the call's.
        let at = if first { pc } else { pc - 1 };
        first = false;
        let (from_rbp, cfa_offset, rbp_offset) = match rule_at(at) {
            Rule::End => break,
            Rule::Complex => return None,
            Rule::Simple {
                from_rbp,
                cfa_offset,
                rbp_offset,
            } => (from_rbp, cfa_offset, rbp_offset),
        };
        let base = if from_rbp { bp } else { sp };
        let Some(cfa) = base.checked_add(u64::from(cfa_offset)) else {
            break;
        };
        if cfa <= sp || cfa > hi {
            break; // a corrupt or foreign frame: stop rather than guess
        }
        let Some(ra) = read(cfa - 8, lo, hi) else {
            break;
        };
        if let Some(o) = rbp_offset {
            match read(cfa.wrapping_add_signed(i64::from(o)), lo, hi) {
                Some(v) => bp = v,
                None => break,
            }
        }
        sp = cfa;
        pc = ra;
        if pc == 0 {
            break;
        }
        if in_self && pc >= self_lo && pc < self_hi {
            continue;
        }
        in_self = false;
        if n == MAX_DEPTH {
            out[n] = TRUNCATED_FRAME;
            return Some(n + 1);
        }
        out[n] = pc;
        n += 1;
    }
    Some(n)
}

#[cfg(not(target_arch = "x86_64"))]
pub fn capture(_out: &mut [u64; MAX_DEPTH + 1]) -> Option<usize> {
    None
}

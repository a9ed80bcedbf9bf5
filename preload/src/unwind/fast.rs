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

/// The distinct rules met so far, encoded ([`Rule::encode`]), indexed by id; a process has
/// a few hundred. Id 0 means "empty"; entries are written before any cache word names
/// them and never change afterwards.
static RULES: [AtomicU64; 1 << 16] = [const { AtomicU64::new(0) }; 1 << 16];
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
    if n as usize >= RULES.len() {
        return None;
    }
    RULES[n as usize].store(word, Ordering::Release);
    RULE_COUNT.store(n + 1, Ordering::Release);
    Some(n)
}

#[inline]
fn rule_at(pc: u64) -> Rule {
    if pc >> 48 != 0 {
        return Rule::Complex;
    }
    let w = slot(pc).load(Ordering::Acquire);
    if w >> 16 == pc && w & 0xffff != 0 {
        if let Some(r) = Rule::decode(RULES[(w & 0xffff) as usize].load(Ordering::Acquire)) {
            return r;
        }
    }
    // No unwind information (code without CFI, or outside any module): the walk ends
    // here, as it would in any unwinder.
    let (rule, id) = modules::with_rule(pc, |r| {
        let r = r.unwrap_or(Rule::End);
        (r, rule_id(r))
    });
    if let Some(id) = id {
        slot(pc).store((pc << 16) | id, Ordering::Release);
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

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
}

/// This thread's stack `[lo, hi)`, found once per thread.
fn stack_bounds() -> Option<(u64, u64)> {
    let (mut lo, mut hi) = (0usize, 0usize);
    // SAFETY: valid out-pointers; the C side only reads initial-exec thread-locals.
    unsafe { peakprof_stack_bounds(&mut lo, &mut hi) };
    if lo == 0 && hi == 0 {
        (lo, hi) = find_stack_bounds().unwrap_or((1, 1));
        // SAFETY: as above.
        unsafe { peakprof_set_stack_bounds(lo, hi) };
    }
    (hi > lo + 1).then_some((lo as u64, hi as u64))
}

fn find_stack_bounds() -> Option<(usize, usize)> {
    // SAFETY: pthread_getattr_np fills `attr`, which we destroy after reading the stack
    // range; all pointers are valid locals.
    unsafe {
        let mut attr: libc::pthread_attr_t = core::mem::zeroed();
        if libc::pthread_getattr_np(libc::pthread_self(), &mut attr) != 0 {
            return None;
        }
        let mut addr: *mut libc::c_void = core::ptr::null_mut();
        let mut size = 0usize;
        let ok = libc::pthread_attr_getstack(&attr, &mut addr, &mut size) == 0;
        libc::pthread_attr_destroy(&mut attr);
        ok.then(|| (addr as usize, addr as usize + size))
    }
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
    if addr < lo || addr.checked_add(8)? > hi || addr % 8 != 0 {
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
    let (_, hi) = stack_bounds()?;
    let (mut sp, mut bp, mut pc) = registers();
    if sp >= hi {
        return None; // on a signal stack or another foreign stack
    }
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

/// Follows the frame-pointer chain: ~1 ns a frame, but wrong for code built without frame
/// pointers. Kept for the stack-capture benchmark.
#[cfg(target_arch = "x86_64")]
#[inline(never)]
pub fn capture_frame_pointers(out: &mut [u64; MAX_DEPTH + 1]) -> usize {
    let Some((_, hi)) = stack_bounds() else {
        return 0;
    };
    let (sp, mut bp, _) = registers();
    let (self_lo, self_hi) = self_range();
    let mut n = 0;
    let mut in_self = true;
    while n < MAX_DEPTH {
        let (Some(next), Some(ra)) = (read(bp, sp, hi), read(bp.wrapping_add(8), sp, hi)) else {
            break;
        };
        if ra == 0 || next <= bp {
            break;
        }
        bp = next;
        if in_self && ra >= self_lo && ra < self_hi {
            continue;
        }
        in_self = false;
        out[n] = ra;
        n += 1;
    }
    n
}

#[cfg(not(target_arch = "x86_64"))]
pub fn capture_frame_pointers(_out: &mut [u64; MAX_DEPTH + 1]) -> usize {
    0
}

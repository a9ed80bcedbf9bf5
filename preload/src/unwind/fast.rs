//! The fast unwinder: steps from frame to frame with one cached rule per return address.

use core::sync::atomic::{AtomicU64, Ordering};

use peakprof::format::TRUNCATED_FRAME;
use peakprof::unwind::{Rule, PACKED16};

use super::{memo, modules, self_range, Frames, Origin, MAX_DEPTH};
use crate::thread::Thread;

/// Sets in the rule cache; each set is one cache line of [`WAYS`] words.
const SET_BITS: u32 = 12;
/// Words per set: eight 8-byte words fill one 64-byte line, so a lookup costs at most one
/// cache miss however many of them it compares.
const WAYS: usize = 8;

/// One line of the rule cache. Each word is `pc << 16 | rule code`. x86-64 user addresses
/// fit in 47 bits, so a word identifies its pc exactly and a racing reader either sees a
/// whole entry or another pc's (which it rejects): no locks on the hot path.
#[repr(align(64))]
struct Set([AtomicU64; WAYS]);

/// Set-associative rather than direct-mapped: a big program's hot return addresses collide
/// in a direct-mapped table (each collision costs a walk of `.eh_frame`), and avoiding that
/// took a table too big for the caches (cc1: 40% of unwinding time was that table's misses).
/// With eight ways, 32768 entries (256 KiB) keep cc1's rules with fewer misses.
static CACHE: [Set; 1 << SET_BITS] =
    [const { Set([const { AtomicU64::new(0) }; WAYS]) }; 1 << SET_BITS];

/// The set where `pc`'s rule is kept, and its home way there: looked at first, and where
/// a new entry goes when free, so that most lookups hit their first compare (those whose
/// home way was taken when they were cached scan the set). Straight from the pc's low bits,
/// no hash: this is a link of the walk's dependent chain (pc, set, rule, return address,
/// next pc), and a multiply and shifts were a quarter of it. Return addresses are spread
/// over those bits well enough; code that collides shares the set's eight ways.
#[inline(always)]
fn set_of(pc: u64) -> (&'static Set, usize) {
    let set = &CACHE[(pc >> 4) as usize & ((1 << SET_BITS) - 1)];
    let way = (pc >> (4 + SET_BITS)) as usize & (WAYS - 1);
    (set, way)
}

/// The cached rule for `pc`, if any.
#[inline(always)]
fn cached(set: &Set, home: usize, pc: u64) -> Option<Rule> {
    let w = set.0[home].load(Ordering::Acquire);
    if w >> 16 == pc {
        return decode_code(w & 0xffff);
    }
    set.0.iter().find_map(|w| {
        let w = w.load(Ordering::Acquire);
        if w >> 16 == pc {
            decode_code(w & 0xffff)
        } else {
            None
        }
    })
}

/// The distinct rules met so far that do not fit a cache word's code, encoded
/// ([`Rule::encode`]), indexed by id. Id 0 means "empty"; entries are written before any
/// cache word names them and never change afterwards.
static RULES: [AtomicU64; TABLE_IDS as usize] = [const { AtomicU64::new(0) }; TABLE_IDS as usize];
/// Number of ids handed out (under the module lock, on the miss path only).
static RULE_COUNT: AtomicU64 = AtomicU64::new(1);

/// Empties the cache (a module was unloaded: its addresses may be reused).
pub fn clear_cache() {
    memo::invalidate_all();
    for w in CACHE.iter().flat_map(|set| set.0.iter()) {
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

/// Rule codes with this bit are rules packed in the code itself ([`Rule::pack16`]); below,
/// table ids.
const INLINE: u64 = PACKED16 as u64;
/// Ids the table can hand out (codes 1..INLINE).
const TABLE_IDS: u64 = INLINE;

/// The 16-bit code of `rule` for a cache word: nearly every call site's rule packs into
/// the code itself, so a hit costs one load. Others get a table id.
fn rule_code(rule: Rule) -> Option<u64> {
    rule.pack16().map(u64::from).or_else(|| rule_id(rule))
}

/// The rule for a 16-bit code from a cache word; `None` for an empty code.
#[inline(always)]
fn decode_code(code: u64) -> Option<Rule> {
    if let Some(rule) = Rule::unpack16(code as u16) {
        return Some(rule);
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
    let (set, home) = set_of(pc);
    if let Some(r) = cached(set, home, pc) {
        return r;
    }
    // No unwind information (code without CFI, or outside any module): the walk ends
    // here, as it would in any unwinder.
    let (rule, code) = modules::with_rule(pc, |r| {
        let r = r.unwrap_or(Rule::End);
        (r, rule_code(r))
    });
    if let Some(code) = code {
        // The home way if free, else any free way, else the home way again: no replacement
        // state to keep (and race on), and a pc evicted by a neighbour comes back home.
        let free = |w: &AtomicU64| w.load(Ordering::Relaxed) == 0;
        let way = if free(&set.0[home]) {
            home
        } else {
            set.0.iter().position(free).unwrap_or(home)
        };
        set.0[way].store((pc << 16) | code, Ordering::Release);
    }
    rule
}

extern "C" {
    /// Top of the main thread's stack at start-up (glibc, exported by ld.so).
    static __libc_stack_end: *mut libc::c_void;
}

/// Farthest a stack top may lie above the stack pointer before it is not believed.
const MAX_STACK: usize = 1 << 30;

/// The top of this thread's stack, found once per thread. Frames lie between the stack
/// pointer and it; reads outside are refused.
#[inline(always)]
fn stack_top(t: Thread, sp: u64) -> Option<u64> {
    let (lo, mut hi) = t.stack_bounds();
    if lo == 0 && hi == 0 {
        hi = find_stack_top().unwrap_or(1);
        t.set_stack_bounds(1, hi);
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

/// Whether an earlier walk's level `j` was in the state the walk being made is in now
/// (`bp` aside when the earlier walk never used it from there on).
#[inline(always)]
fn same_state(
    prev: &memo::Memo,
    j: usize,
    (pc, sp, bp): (u64, u64, u64),
    in_self: bool,
    first: bool,
) -> bool {
    let l = &prev.level[j];
    l.sp == sp
        && l.pc == pc
        && l.in_self() == in_self
        && l.at_start() == first
        && (l.bp == bp || !prev.bp_live(j))
}

/// Captures with cached rules; `None` asks the caller to use the general unwinder. With
/// `use_memo`, the walk stops where it meets one of this thread's earlier captures and
/// copies the rest after checking it still holds (see [`memo`]). With an `origin`, the walk
/// starts at the hook's caller; without, at this function, stepping out of this library.
#[cfg(target_arch = "x86_64")]
#[inline(never)]
pub fn capture(out: &mut Frames, use_memo: bool, origin: Option<Origin>) -> Option<usize> {
    let (here_sp, here_bp, here_pc) = registers();
    let t = Thread::current();
    // None on a signal stack or another foreign stack: the general unwinder copes.
    let hi = stack_top(t, here_sp)?;
    let lo = here_sp;
    out.clear();
    // The hook's caller: the state unwinding would reach on leaving the hook's frame (the
    // return address is the first frame kept). A hook runs on its caller's stack, so the
    // entry stack pointer lies between ours and the top.
    let entry = origin.and_then(|o| Some((read(o.sp, lo, hi)?, o.sp.checked_add(8)?, o.bp)));
    // `first`: `pc` is the current instruction rather than a return address.
    let (mut pc, mut sp, mut bp, mut first, mut in_self) = match entry {
        Some((ra, sp, bp)) if ra != 0 => {
            out.push(ra);
            (ra, sp, bp, false, false)
        }
        _ => (here_pc, here_sp, here_bp, true, true),
    };
    let (self_lo, self_hi) = self_range();
    let bounds = ((lo, hi), (self_lo, self_hi));
    let first_sp = sp;
    let wanted = use_memo && memo::wanted(t);
    let generation = memo::generation();
    // In the newest earlier walk: the first level worth matching (matches below are known
    // to fail).
    let mut min_j = 0usize;
    // Some while this walk is being recorded: the newest earlier walk (if worth meeting),
    // the walk being written, and the order to update.
    let mut memos = None;
    if let Some(mut walks) = wanted.then(|| memo::walks(t)).flatten() {
        // A stack repeated whole (a program allocating from a few sites in turn) is met at
        // its first level, in any earlier walk. Further out only the newest is followed:
        // the older ones rarely meet a walk there, and following four at every level cost
        // cc1 more than their matches saved.
        for k in 0..memo::EARLIER {
            let Some(prev) = walks.earlier_from(k, sp).filter(|m| m.usable(generation)) else {
                continue;
            };
            if !same_state(prev, 0, (pc, sp, bp), in_self, first) {
                continue;
            }
            let walked = out.len();
            match reuse(prev, None, 0, 0, out, bounds) {
                Ok(total) => {
                    out.known_stack = prev.stack();
                    out.newest = true;
                    walks.promote(k);
                    memo::account(t, total - walked, total);
                    return Some(total);
                }
                Err(first_worth) if k == 0 => min_j = first_worth,
                Err(_) => {}
            }
        }
        memos = walks.into_parts().map(|(newest, next, order)| {
            (newest.usable(generation).then_some(newest), next, order)
        });
    }
    // In the newest earlier walk: its first level not below our sp.
    let mut j = 0usize;
    // One past the outermost level of this walk whose step used `bp` (see `Memo::bp_until`).
    let mut bp_until = 0usize;
    let mut level = 0usize;
    loop {
        if let Some((newest, next, _)) = memos.as_mut() {
            if !next.enter(level, (pc, sp, bp), in_self, first) {
                memos = None; // no room: this walk will not be a memo
            } else if let Some(prev) = newest.as_deref_mut() {
                // Clamped: a length the program wrote over must not index past the levels.
                let n = (prev.len as usize).min(memo::LEVELS);
                // Levels are ordered by sp in both walks: advance to the first not below ours.
                while j < n && prev.level[j].sp < sp {
                    j += 1;
                }
                if j >= n {
                    *newest = None;
                } else if j >= min_j && same_state(prev, j, (pc, sp, bp), in_self, first) {
                    let walked = out.len();
                    let next = Some((&mut **next, bp_until));
                    match reuse(prev, next, j, level, out, bounds) {
                        Ok(total) => {
                            if let Some((_, _, order)) = memos {
                                order.push_next(first_sp);
                            }
                            out.newest = true;
                            memo::account(t, total - walked, total);
                            return Some(total);
                        }
                        // The stacks differ further out: walk on, perhaps to a later match.
                        Err(first_worth) => min_j = first_worth,
                    }
                }
            }
        }
        // A return address points after the call; the rule in effect is the call's.
        let at = if first { pc } else { pc - 1 };
        first = false;
        let (from_rbp, cfa_offset, rbp_offset) = match rule_at(at) {
            Rule::End => {
                level += 1;
                break;
            }
            Rule::Complex => return None,
            Rule::Simple {
                from_rbp,
                cfa_offset,
                rbp_offset,
            } => (from_rbp, cfa_offset, rbp_offset),
        };
        if from_rbp {
            if let Some((_, next, _)) = memos.as_mut() {
                next.level[level].set_uses_bp();
                bp_until = level + 1;
            }
        }
        let base = if from_rbp { bp } else { sp };
        let Some(cfa) = base.checked_add(u64::from(cfa_offset)) else {
            return Some(out.len()); // a corrupt or foreign frame: stop rather than guess
        };
        if cfa <= sp || cfa > hi {
            return Some(out.len());
        }
        let Some(ra) = read(cfa - 8, lo, hi) else {
            return Some(out.len());
        };
        if let Some(o) = rbp_offset {
            let slot = cfa.wrapping_add_signed(i64::from(o));
            match read(slot, lo, hi) {
                Some(v) => bp = v,
                None => return Some(out.len()),
            }
            if let Some((_, next, _)) = memos.as_mut() {
                next.level[level].set_bp_slot(slot);
            }
        }
        sp = cfa;
        pc = ra;
        level += 1;
        if pc == 0 {
            if let Some((_, next, _)) = memos.as_mut() {
                if !next.enter(level, (pc, sp, bp), in_self, false) {
                    memos = None;
                }
            }
            level += 1;
            break;
        }
        if in_self && pc >= self_lo && pc < self_hi {
            continue;
        }
        in_self = false;
        if out.len() == MAX_DEPTH {
            out.push(TRUNCATED_FRAME);
            return Some(out.len());
        }
        out.push(pc);
    }
    if let Some((_, next, order)) = memos {
        next.finish(level, generation, bp_until);
        order.push_next(first_sp);
        out.newest = true;
    }
    if wanted {
        memo::account(t, 0, out.len());
    }
    Some(out.len())
}

/// The rest of a walk that reached level `j` of an earlier capture (as its own level
/// `level`, with the frames in `out` so far): checks every stack word the earlier walk read
/// from there on, then copies its frames, and its levels into `next` when given (with one
/// past the outermost level of the walk being made whose step used `bp`). `Err`
/// when a word changed or the copy would not fit (the caller then walks on), with the
/// first level of the earlier walk still worth matching: one past the step whose word
/// changed, since a match below it would check that word again.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn reuse(
    prev: &mut memo::Memo,
    next: Option<(&mut memo::Memo, usize)>,
    j: usize,
    level: usize,
    out: &mut Frames,
    bounds: ((u64, u64), (u64, u64)),
) -> Result<usize, usize> {
    let whole = next.is_none();
    let (total, asked) = reuse_checked(prev, next, j, level, out, bounds)?;
    if whole && asked {
        // A walk repeated whole, whose check had to ask whether a reloaded `bp` that
        // differed was live (sqlite3's `rbp` is an ordinary register): a program allocating
        // from a few sites in turn repeats it again and again, so its liveness is worth
        // working out once. Walks met further out are mostly met once (cc1), and asking
        // costs them less than working out every level would.
        prev.work_out_from(j);
    }
    Ok(total)
}

/// [`reuse`] but for working out the earlier walk's liveness: also whether its check asked
/// about a reloaded `bp`.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn reuse_checked(
    prev: &memo::Memo,
    next: Option<(&mut memo::Memo, usize)>,
    j: usize,
    level: usize,
    out: &mut Frames,
    ((lo, hi), (self_lo, self_hi)): ((u64, u64), (u64, u64)),
) -> Result<(usize, bool), usize> {
    let len = prev.len as usize;
    // Levels j..len; a length the program wrote over is refused rather than indexed past.
    let Some(levels) = prev.level.get(j..len) else {
        return Err(len);
    };
    let Some((first, outer_levels)) = levels.split_first() else {
        return Err(len);
    };
    let rest = levels.len(); // the first of which the caller already recorded
    if level + rest > memo::LEVELS {
        return Err(len);
    }
    let asked = words_unchanged(prev, j, levels, lo, hi)?;
    // The frames: levels j+1.. minus this library's own (only ever innermost) and the
    // terminal zero.
    let mut outer = outer_levels;
    if outer.last().is_some_and(|l| l.pc == 0) {
        outer = &outer[..outer.len() - 1];
    }
    if first.in_self() {
        let skip = outer
            .iter()
            .take_while(|l| l.pc >= self_lo && l.pc < self_hi)
            .count();
        outer = &outer[skip..];
    }
    if out.len() + outer.len() > MAX_DEPTH {
        return Err(len); // the full walk writes the truncation marker
    }
    if next.is_none() && prev.stack().is_some() {
        // A stack repeated whole whose id is known: the profiler needs only the id, so the
        // frames stay in the memo until read (see `Frames::pending`).
        out.defer(outer);
        return Ok((out.len(), asked));
    }
    out.extend(outer.iter().map(|l| l.pc));
    // The levels, flags included (they evolve from level j exactly as in the earlier
    // walk). The caller wrote level `level` (= earlier j) but for its step.
    if let Some((next, walked_bp_until)) = next {
        next.level[level].take_step_of(first);
        next.level[level + 1..level + rest].copy_from_slice(outer_levels);
        // Past the levels this walk made, the earlier walk's own limit, moved to where
        // its level `j` sits in this one.
        let copied = prev
            .bp_until()
            .checked_sub(j)
            .filter(|&n| n > 0)
            .map_or(0, |n| n + level);
        next.finish(level + rest, prev.generation, walked_bp_until.max(copied));
    }
    Ok((out.len(), asked))
}

/// Whether every stack word the earlier walk `prev` read from its level `j` on (`levels`
/// are its levels `j..`) still holds: `Err` as for [`reuse`] when not, else whether a
/// reloaded `bp` that differed had to be asked about. A walk none of whose steps from `j`
/// on reloaded a live `bp` (every walk of code built without frame pointers, sqlite3's)
/// read only return addresses: those are checked here, in a loop of a few instructions a
/// level ([`returns_unchanged`]); the others go to [`words_and_slots_unchanged`].
#[cfg(target_arch = "x86_64")]
#[inline(never)]
fn words_unchanged(
    prev: &memo::Memo,
    j: usize,
    levels: &[memo::Level],
    lo: u64,
    hi: u64,
) -> Result<bool, usize> {
    if prev.bp_until() > j {
        return words_and_slots_unchanged(prev, j, levels, lo, hi);
    }
    let len = j + levels.len();
    let span = span_of(lo, hi).ok_or(len)?;
    returns_unchanged(levels, j, len, lo, span)?;
    Ok(false)
}

/// The `span` of the stack part `[lo, hi)` for 8-byte reads: a word at `addr` lies inside
/// when `addr - lo <= span`, one unsigned compare (an address below `lo` wraps to far
/// above `span`). `None` when no word fits.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn span_of(lo: u64, hi: u64) -> Option<u64> {
    hi.saturating_sub(lo).checked_sub(8)
}

/// The return address of each level of `levels` but the first (level `first` of a walk of
/// `len` levels) is still at its `sp - 8`: `Err` with the level whose word changed, or
/// `len` for a word outside the stack (a memo the program wrote over; `span` as from
/// [`span_of`]).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn returns_unchanged(
    levels: &[memo::Level],
    first: usize,
    len: usize,
    lo: u64,
    span: u64,
) -> Result<(), usize> {
    let outer = levels.get(1..).unwrap_or_default();
    match first_changed(outer, lo.wrapping_add(8), span) {
        Unchanged::All => Ok(()),
        Unchanged::Until(bytes) => Err(first + 1 + bytes / core::mem::size_of::<memo::Level>()),
        Unchanged::Outside => Err(len),
    }
}

/// What [`first_changed`] found.
enum Unchanged {
    All,
    /// The return address of the level this many bytes into the levels changed (bytes,
    /// not an index: the loop then needs no counter besides its offset).
    Until(usize),
    /// A level's return address lies outside the stack.
    Outside,
}

/// The first of `levels` whose return address changed. Out of line, with four values
/// live, so the loop keeps them in registers (inlined into `capture` it spilled the
/// bounds and ran 13 instructions a level; rustc's loop over the level pairs ran 12, with
/// three induction variables): the level's index is worked out from its address only on
/// the way out (by the caller). `lo8` is the stack's low end plus 8, `span` as from
/// [`span_of`]. Two levels a round, with one test of both words: 9 instructions a level
/// against 10 one at a time (sqlite3 checks ~13 levels a capture: -0.2% of its profiled
/// instructions); the pair that fails (and a last odd level) is looked at one at a time.
#[cfg(target_arch = "x86_64")]
#[inline(never)]
fn first_changed(levels: &[memo::Level], lo8: u64, span: u64) -> Unchanged {
    let start = levels.as_ptr_range();
    let mut at = start.start;
    // `sp - 8 - lo`, with the 8 folded into the bound: the load then takes the `- 8` in
    // its addressing.
    let outside = |l: &memo::Level| l.sp.wrapping_sub(lo8) > span;
    while (start.end as usize - at as usize) >= 2 * core::mem::size_of::<memo::Level>() {
        // SAFETY: `at` and the level after it lie inside `levels` (checked just above).
        let (a, b) = unsafe { (&*at, &*at.add(1)) };
        if outside(a) || outside(b) {
            break;
        }
        // SAFETY: neither level is outside the stack (just checked).
        let (wa, wb) = unsafe { (return_address(a), return_address(b)) };
        if (wa ^ a.pc) | (wb ^ b.pc) != 0 {
            break;
        }
        at = at.wrapping_add(2);
    }
    while at != start.end {
        // SAFETY: `at` walks `levels` from where the pairs stopped to its end.
        let l = unsafe { &*at };
        if outside(l) {
            return Unchanged::Outside;
        }
        // SAFETY: `l` is not outside the stack (just checked).
        if unsafe { return_address(l) } != l.pc {
            return Unchanged::Until(at as usize - start.start as usize);
        }
        at = at.wrapping_add(1);
    }
    Unchanged::All
}

/// The word at `l.sp - 8`, where the walk read `l`'s return address.
///
/// # Safety
/// The 8 bytes from `l.sp - 8` must lie inside `[lo, hi)`, the live part of this
/// thread's stack (see `read`), as [`first_changed`]'s `l.sp - lo8 <= span` ensures
/// (`span` leaves room for the whole word). Unaligned reads are fine (a memo the program
/// wrote over may hold any address).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn return_address(l: &memo::Level) -> u64 {
    // SAFETY: as the caller promised.
    unsafe { (l.sp.wrapping_sub(8) as *const u64).read_unaligned() }
}

/// [`words_unchanged`] for a walk with a step from `j` on that may have reloaded a live
/// `bp`: its return addresses and those reloads. Out of line, with few values live, so
/// the loops keep them in registers (inside `capture` they spilled and ran ~28
/// instructions a level; 12-17 here). No saved `bp` at or past [`memo::Memo::bp_until`] is
/// checked; below it, a walk worked out from `j` ([`memo::Memo::work_out_from`]) has no
/// slot left for a dead one, and one not worked out asks ([`bp_live`]) when the value
/// differs: asking at every check was a third of this loop's instructions on sqlite3.
#[cfg(target_arch = "x86_64")]
#[inline(never)]
fn words_and_slots_unchanged(
    prev: &memo::Memo,
    j: usize,
    levels: &[memo::Level],
    lo: u64,
    hi: u64,
) -> Result<bool, usize> {
    let len = j + levels.len();
    let span = span_of(lo, hi).ok_or(len)?;
    // The steps of levels below `split` may have reloaded a live `bp`; the rest did not.
    let split = prev.bp_until().saturating_sub(j).min(levels.len());
    let with_slots = levels.get(..split + 1).unwrap_or(levels);
    let asked = if prev.worked_out_from(j) {
        steps_unchanged::<false>(with_slots, j, len, lo, span, prev)?
    } else {
        steps_unchanged::<true>(with_slots, j, len, lo, span, prev)?
    };
    // From `split` on, return addresses only: the loop every other walk's check uses.
    returns_unchanged(&levels[split..], j + split, len, lo, span)?;
    Ok(asked)
}

/// [`words_and_slots_unchanged`] for the steps between consecutive `levels` (the first of
/// which is level `first` of `prev`, a walk of `len`): their return addresses and their
/// reloads of `bp`; with `SCAN`, levels not worked out yet, whose reloads of a dead `bp`
/// are still there (a differing one is then asked about).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn steps_unchanged<const SCAN: bool>(
    levels: &[memo::Level],
    first: usize,
    len: usize,
    lo: u64,
    span: u64,
    prev: &memo::Memo,
) -> Result<bool, usize> {
    // Independent loads, unlike the walk's chain. The reads stay inside this thread's
    // stack.
    let mut asked = false;
    let mut rest = levels;
    while let [this, outer, ..] = rest {
        // The level of `outer`, for the error only.
        let i = first + 1 + (levels.len() - rest.len());
        rest = &rest[1..];
        let ra_at = outer.sp.wrapping_sub(8);
        if ra_at.wrapping_sub(lo) > span {
            return Err(len);
        }
        // SAFETY: inside `[lo, hi)`, the live part of this thread's stack (see `read`).
        // Unaligned-safe: a memo the program wrote over may hold any address.
        if unsafe { (ra_at as *const u64).read_unaligned() } != outer.pc {
            return Err(i);
        }
        let slot = this.bp_slot();
        if slot != 0 {
            if slot.wrapping_sub(lo) > span {
                return Err(len);
            }
            // SAFETY: as above.
            // A reloaded frame pointer the rest of the walk never uses (rbp as an ordinary
            // register: its saved value changes from call to call) need not be the same;
            // worked out, such a reload has no slot here (see `Memo::work_out_from`).
            if unsafe { (slot as *const u64).read_unaligned() } != outer.bp {
                if !SCAN || bp_live(prev, i) {
                    return Err(i);
                }
                asked = true;
            }
        }
    }
    Ok(asked)
}

/// [`memo::Memo::bp_live`] kept out of [`steps_unchanged`]'s loop: inlined, its set-up was
/// hoisted into every iteration, though it is asked only when a reloaded `bp` differs.
#[cfg(target_arch = "x86_64")]
#[inline(never)]
fn bp_live(prev: &memo::Memo, level: usize) -> bool {
    prev.bp_live(level)
}

#[cfg(not(target_arch = "x86_64"))]
pub fn capture(_out: &mut Frames, _use_memo: bool, _origin: Option<Origin>) -> Option<usize> {
    None
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;

    /// `first_changed` against a plain loop, on a fake stack (a buffer) and walks over
    /// it: every length up to 9, a word changed at every position (or none), a level
    /// outside the buffer at every position.
    #[test]
    fn first_changed_finds_the_first_changed_or_outside_level() {
        let stack: Vec<u64> = (0..64).map(|i| 0x1000 + i).collect();
        let lo = stack.as_ptr() as u64;
        let hi = lo + 8 * stack.len() as u64;
        let span = span_of(lo, hi).unwrap();
        // A level whose return address the walk read at `stack[i]`.
        let level = |i: u64, pc: u64| memo::Level::returning_to(pc, lo + 8 * (i + 1));
        for n in 0..10u64 {
            for bad in 0..=n {
                for outside in [false, true] {
                    let levels: Vec<memo::Level> = (0..n)
                        .map(|i| match (i == bad, outside) {
                            (true, false) => level(3 * i, 7),           // a changed word
                            (true, true) => level(1000, 0x1000 + 1000), // past `hi`
                            _ => level(3 * i, 0x1000 + 3 * i),
                        })
                        .collect();
                    let want = match levels.iter().position(|l| {
                        l.sp.wrapping_sub(lo + 8) > span
                            || stack[((l.sp - lo) / 8 - 1) as usize] != l.pc
                    }) {
                        None => "all".to_string(),
                        Some(i) if outside => format!("outside {i}"),
                        Some(i) => format!("until {i}"),
                    };
                    let got = match first_changed(&levels, lo + 8, span) {
                        Unchanged::All => "all".to_string(),
                        Unchanged::Outside => format!("outside {bad}"),
                        Unchanged::Until(b) => {
                            format!("until {}", b / core::mem::size_of::<memo::Level>())
                        }
                    };
                    assert_eq!(
                        got, want,
                        "{n} levels, level {bad} changed, outside: {outside}"
                    );
                }
            }
        }
    }
}

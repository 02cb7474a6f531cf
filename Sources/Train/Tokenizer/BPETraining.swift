// Byte-level BPE training (SPEC §3.3): split the text with the pattern, count each distinct
// piece once, then repeatedly merge the most frequent adjacent pair of tokens into a new
// token. Pair counts are kept incrementally: a merge touches only the pieces that hold the
// pair, and a lazy max-heap finds the next pair without rescanning. Ties between equally
// frequent pairs go to the smaller (left, right) id pair, so training is deterministic.
import Foundation

/// A candidate merge: the larger count first, the smaller pair on ties. Entries go stale
/// when a count changes; the trainer pushes the fresh count and skips stale ones as they
/// surface.
struct PairCandidate: Comparable {
    let count: Int, pair: UInt64
    static func < (a: Self, b: Self) -> Bool { a.count > b.count || (a.count == b.count && a.pair < b.pair) }
}

/// Pair of token ids as one key: left in the high half.
@inline(__always) func pairKey(_ a: Int32, _ b: Int32) -> UInt64 { UInt64(UInt32(a)) << 32 | UInt64(UInt32(b)) }

public enum BPETraining {
    /// Distinct pieces of `texts` with their counts, in first-seen order.
    public static func countPieces(_ texts: [String]) -> (pieces: [[UInt8]], counts: [Int]) {
        var index: [ArraySlice<UInt8>: Int] = [:]
        var pieces: [[UInt8]] = [], counts: [Int] = []
        for text in texts {
            let bytes = Array(text.utf8)
            for r in SplitPattern.pieces(text) {
                let piece = bytes[r]
                if let k = index[piece] {
                    counts[k] += 1
                } else {
                    index[piece] = pieces.count
                    pieces.append(Array(piece))
                    counts.append(1)
                }
            }
        }
        return (pieces, counts)
    }

    /// The merges that make `mergeCount` new tokens (ids 256, 257, ... in order) from the
    /// pieces: merge i joins the pair `merges[i]` into token 256 + i. Stops early when no
    /// pair occurs any more.
    public static func train(pieces: [[UInt8]], counts: [Int], mergeCount: Int) -> [(Int32, Int32)] {
        var words = pieces.map { $0.map { Int32($0) } }
        var pairCounts: [UInt64: Int] = [:]
        var holders: [UInt64: [Int32]] = [:]     // word indices that held the pair (may be stale)
        for (w, word) in words.enumerated() where word.count >= 2 {
            for k in 0..<(word.count - 1) {
                let key = pairKey(word[k], word[k + 1])
                pairCounts[key, default: 0] += counts[w]
                if holders[key]?.last != Int32(w) { holders[key, default: []].append(Int32(w)) }
            }
        }
        var heap = BinaryHeap<PairCandidate>()
        for key in pairCounts.keys.sorted() { heap.push(PairCandidate(count: pairCounts[key]!, pair: key)) }

        var merges: [(Int32, Int32)] = []
        merges.reserveCapacity(mergeCount)
        var changed: [UInt64: Int] = [:]
        while merges.count < mergeCount, let top = heap.pop() {
            guard top.count > 0, pairCounts[top.pair] == top.count else { continue }  // stale entry
            let (a, b) = (Int32(truncatingIfNeeded: top.pair >> 32), Int32(truncatingIfNeeded: top.pair))
            let id = Int32(256 + merges.count)
            merges.append((a, b))
            changed.removeAll(keepingCapacity: true)
            for w in holders.removeValue(forKey: top.pair) ?? [] {
                let old = words[Int(w)]
                guard old.count >= 2 else { continue }
                // Merge left to right without overlaps, as encoding does.
                var new: [Int32] = []
                new.reserveCapacity(old.count)
                var k = 0, found = false
                while k < old.count {
                    if k + 1 < old.count && old[k] == a && old[k + 1] == b {
                        new.append(id); k += 2; found = true
                    } else {
                        new.append(old[k]); k += 1
                    }
                }
                guard found else { continue }
                let n = counts[Int(w)]
                for k in 0..<(old.count - 1) { changed[pairKey(old[k], old[k + 1]), default: 0] -= n }
                for k in 0..<max(0, new.count - 1) {
                    let key = pairKey(new[k], new[k + 1])
                    changed[key, default: 0] += n
                    if new[k] == id || new[k + 1] == id, holders[key]?.last != w { holders[key, default: []].append(w) }
                }
                words[Int(w)] = new
            }
            for (key, delta) in changed.sorted(by: { $0.key < $1.key }) where delta != 0 {
                let c = pairCounts[key, default: 0] + delta
                pairCounts[key] = c == 0 ? nil : c
                if c > 0 { heap.push(PairCandidate(count: c, pair: key)) }
            }
        }
        return merges
    }
}

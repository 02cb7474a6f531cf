// Byte-level BPE training (SPEC §3.3): split the text with the pattern, count each distinct
// piece once, then repeatedly merge the most frequent adjacent pair of tokens into a new
// token. Pair counts are kept incrementally: a merge touches only the pieces that hold the
// pair, and a lazy max-heap finds the next pair without rescanning. Ties between equally
// frequent pairs go to the smaller (left, right) id pair, so training is deterministic.
import Foundation
import Tensor

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

    /// Distinct pieces of many texts with their counts, counted a batch of texts at a time on
    /// all threads: each of a fixed number of blocks of the batch counts into its own table,
    /// and the tables are added into the total in block order. The merges trained from the
    /// counts do not depend on the order the pieces were first seen (pair counts are sums, and
    /// ties go to the smaller pair), so nor on the thread count.
    public struct PieceCounter {
        /// Piece → index into `pieces` / `counts`. Strings of up to 15 UTF-8 bytes (nearly
        /// every piece) are stored inline, with no allocation of their own.
        private var index: [String: Int] = [:]
        public private(set) var pieces: [String] = [], counts: [Int] = []
        /// Characters (Unicode scalars) counted so far.
        public private(set) var characters = 0
        static let blocks = 64

        public init() {}

        public mutating func add(_ texts: [String]) {
            let blocks = min(PieceCounter.blocks, texts.count)
            guard blocks > 0 else { return }
            var tables = [[String: Int]](repeating: [:], count: blocks)
            tables.withUnsafeMutableBufferPointer { out in
                Parallel.forEachItem(blocks) { b in
                    var table: [String: Int] = [:]
                    for t in (b * texts.count / blocks)..<((b + 1) * texts.count / blocks) {
                        let text = texts[t], utf8 = Array(text.utf8)
                        for r in SplitPattern.pieces(text) {
                            table[String(decoding: utf8[r], as: UTF8.self), default: 0] += 1
                        }
                    }
                    out[b] = table
                }
            }
            for text in texts { characters += text.unicodeScalars.count }
            for table in tables {
                // Sorted, so the first-seen order does not depend on hashing.
                for (piece, n) in table.sorted(by: { $0.key < $1.key }) {
                    if let k = index[piece] {
                        counts[k] += n
                    } else {
                        index[piece] = pieces.count
                        pieces.append(piece)
                        counts.append(n)
                    }
                }
            }
        }

        /// The pieces as bytes, for `train`.
        public var pieceBytes: [[UInt8]] { pieces.map { Array($0.utf8) } }
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

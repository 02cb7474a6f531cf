// The byte-level BPE tokenizer of SPEC §3.3: ranks 0..<256 are the bytes, then one rank per
// merge, then the special tokens. Encoding is tiktoken's: split with the pattern; a piece
// that is itself a token is that token; otherwise start from its bytes and repeatedly join
// the adjacent pair whose joined bytes have the lowest rank (the leftmost on ties) until no
// adjacent pair joins into a token. Files: tokenizer.tiktoken (`base64(bytes) rank` per
// line, what tiktoken's load_tiktoken_bpe reads) and tokenizer_info.json (pattern, special
// tokens with ids, vocab size). Directories written before that file had its name read it
// from tokenizer.json, a name Hugging Face tools take for their own format.
import Foundation
import Tensor

/// The special tokens, appended after the merges in this order (SPEC §3.3).
public let specialTokens = [
    "<|bos|>", "<|user_start|>", "<|user_end|>", "<|assistant_start|>", "<|assistant_end|>",
    "<|python_start|>", "<|python_end|>", "<|output_start|>", "<|output_end|>",
]

public struct TokenizerError: UserFacingError, Equatable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

public final class Tokenizer: @unchecked Sendable {
    /// The bytes of every ordinary token, indexed by rank.
    public let tokenBytes: [[UInt8]]
    /// Special token ids, in `specialTokens` order, after the ordinary ones.
    public var specialIDs: [Int32] { (0..<specialTokens.count).map { Int32(tokenBytes.count + $0) } }
    public var bosID: Int32 { Int32(tokenBytes.count) }
    public var vocabSize: Int { tokenBytes.count + specialTokens.count }

    public let rankOf: [[UInt8]: Int32]
    /// (left, right) → the token whose bytes are left's then right's, for every such pair
    /// of tokens: the join table of the merge loop, built once from the ranks.
    private let joins: [UInt64: Int32]

    /// A tokenizer from the ordinary tokens' bytes by rank (the first 256 must be the bytes).
    public init(tokenBytes: [[UInt8]]) throws {
        guard tokenBytes.count >= 256, (0..<256).allSatisfy({ tokenBytes[$0] == [UInt8($0)] }) else {
            throw TokenizerError("ranks 0..<256 must be the 256 single bytes in order")
        }
        guard tokenBytes.count + specialTokens.count <= Tokenizer.maxVocabSize else {
            throw TokenizerError("\(tokenBytes.count) ranks and \(specialTokens.count) special tokens exceed \(Tokenizer.maxVocabSize) ids, the most a uint16 token shard holds")
        }
        var rankOf: [[UInt8]: Int32] = [:]
        for (r, b) in tokenBytes.enumerated() {
            if let other = rankOf.updateValue(Int32(r), forKey: b) {
                throw TokenizerError("ranks \(other) and \(r) have the same bytes \(b)")
            }
        }
        var joins: [UInt64: Int32] = [:]
        for (r, b) in tokenBytes.enumerated() where b.count >= 2 {
            for cut in 1..<b.count {
                if let l = rankOf[Array(b[..<cut])], let rr = rankOf[Array(b[cut...])] { joins[pairKey(l, rr)] = Int32(r) }
            }
        }
        self.tokenBytes = tokenBytes
        self.rankOf = rankOf
        self.joins = joins
    }

    /// Trains on `texts` to a vocabulary of `vocabSize` (merges + 256 bytes + the specials).
    public static func train(_ texts: [String], vocabSize: Int) throws -> Tokenizer {
        let (pieces, counts) = BPETraining.countPieces(texts)
        return try train(pieces: pieces, counts: counts, vocabSize: vocabSize)
    }

    /// A tokenizer of `vocabSize` ids trained on distinct pieces and their counts.
    public static func train(pieces: [[UInt8]], counts: [Int], vocabSize: Int) throws -> Tokenizer {
        let mergeCount = vocabSize - 256 - specialTokens.count
        guard mergeCount >= 0 else {
            throw TokenizerError("vocab size \(vocabSize) is below the minimum \(256 + specialTokens.count) (256 bytes + \(specialTokens.count) special tokens)")
        }
        guard vocabSize <= 65536 else { throw TokenizerError("vocab size \(vocabSize) does not fit the uint16 token shards (at most 65536)") }
        let merges = BPETraining.train(pieces: pieces, counts: counts, mergeCount: mergeCount)
        guard merges.count == mergeCount else {
            throw TokenizerError("the text has only enough distinct pairs for \(merges.count) merges; vocab size \(vocabSize) needs \(mergeCount) — use more text or a smaller vocab size")
        }
        var bytes = (0..<256).map { [UInt8($0)] }
        for (a, b) in merges { bytes.append(bytes[Int(a)] + bytes[Int(b)]) }
        return try Tokenizer(tokenBytes: bytes)
    }

    // MARK: Encoding

    /// The ids of one piece's bytes.
    func encodePiece(_ piece: ArraySlice<UInt8>, into out: inout [Int32], scratch: inout MergeScratch) {
        if piece.count == 1 { out.append(Int32(piece.first!)); return }
        if let r = rankOf[Array(piece)] { out.append(r); return }
        scratch.merge(piece, joins: joins, into: &out)
    }

    /// Token ids of `text` (ordinary text: special-token strings are encoded as text).
    /// Long texts are cut into one part per worker thread, each split and encoded on its own.
    /// A cut goes just after a newline that is followed by a visible ASCII character: no
    /// alternative of the pattern matches across such a place (only whitespace or `[\r\n]*`
    /// may follow a newline inside a piece), and the scanner looks only forward, so the ids
    /// are those of one serial pass whatever the thread count.
    public func encode(_ text: String) -> [Int32] {
        let bytes = Array(text.utf8)
        let parts = max(1, min(Parallel.threadCount, bytes.count / 65536))
        guard parts > 1 else { return encodeSerially(text) }
        var cuts = [0]
        for p in 1..<parts {
            var c = max(bytes.count * p / parts, cuts.last! + 1)
            while c < bytes.count && !(bytes[c - 1] == 0x0A && bytes[c] > 0x20 && bytes[c] < 0x7F) { c += 1 }
            if c < bytes.count { cuts.append(c) }
        }
        cuts.append(bytes.count)
        var results = [[Int32]](repeating: [], count: cuts.count - 1)
        results.withUnsafeMutableBufferPointer { res in
            Parallel.forEach(cuts.count - 1) { p in
                res[p] = encodeSerially(String(decoding: bytes[cuts[p]..<cuts[p + 1]], as: UTF8.self))
            }
        }
        return Array(results.joined())
    }

    /// Token ids of `text` on the calling thread alone.
    public func encodeSerially(_ text: String) -> [Int32] {
        let bytes = Array(text.utf8)
        var out: [Int32] = [], scratch = MergeScratch()
        out.reserveCapacity(bytes.count / 3)
        bytes.withUnsafeBufferPointer { b in
            for r in SplitPattern.pieces(text) { encodePiece(ArraySlice(b[r]), into: &out, scratch: &scratch) }
        }
        return out
    }

    /// Token ids of UTF-8 `bytes`; invalid UTF-8 is an error giving its byte offset.
    public func encode(utf8 bytes: [UInt8], source: String = "input") throws -> [Int32] {
        try encode(Self.validatedString(bytes, source: source))
    }

    /// `bytes` as a String, or an error naming the first invalid byte's offset.
    public static func validatedString(_ bytes: [UInt8], source: String) throws -> String {
        if let text = String(validating: bytes, as: UTF8.self) { return text }
        // Invalid: decode again only to find where.
        var it = bytes.makeIterator(), decoder = UTF8(), offset = 0
        while case .scalarValue(let s) = decoder.decode(&it) { offset += UTF8.width(s) }
        let byte = offset < bytes.count ? " (byte 0x\(String(bytes[offset], radix: 16)))" : ""
        throw TokenizerError("\(source): invalid UTF-8 at byte offset \(offset)\(byte); the tokenizer reads UTF-8 text only")
    }

    // MARK: Decoding

    /// The bytes of `ids`; special tokens decode to their names. Unknown ids are an error.
    public func decodeBytes(_ ids: [Int32]) throws -> [UInt8] {
        var out: [UInt8] = []
        for id in ids { out += try bytes(of: id) }
        return out
    }

    /// The bytes of one id (a special token's name for special ids).
    public func bytes(of id: Int32) throws -> [UInt8] {
        let i = Int(id)
        if i >= 0 && i < tokenBytes.count { return tokenBytes[i] }
        if i >= tokenBytes.count && i < vocabSize { return Array(specialTokens[i - tokenBytes.count].utf8) }
        throw TokenizerError("token id \(id) is outside the vocabulary (0..<\(vocabSize))")
    }

    /// The text of `ids`. Ids that end inside a UTF-8 sequence decode with U+FFFD there.
    public func decode(_ ids: [Int32]) throws -> String { String(decoding: try decodeBytes(ids), as: UTF8.self) }

    /// Bytes each id stands for in bits-per-byte (SPEC §3.2): special tokens count 0.
    public var byteLengths: [Int] { tokenBytes.map(\.count) + Array(repeating: 0, count: specialTokens.count) }

    /// The tokenizer's identity: FNV-1a (64-bit) over the split pattern, every token's bytes
    /// (length-prefixed, in rank order) and the special tokens, as 16 hex digits. Shards
    /// (data.json) and checkpoints (meta) record it, so data or a model made with another
    /// tokenizer of the same size is caught.
    public var identity: String {
        var d = Digest()
        func mix(_ n: Int) { withUnsafeBytes(of: UInt32(truncatingIfNeeded: n).littleEndian) { d.add($0) } }
        d.add(SplitPattern.pattern.utf8)
        mix(tokenBytes.count)
        for b in tokenBytes { mix(b.count); d.add(b) }
        for s in specialTokens { mix(s.utf8.count); d.add(s.utf8) }
        let hex = String(d.value, radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex
    }

    // MARK: Files

    /// The largest vocabulary (ranks and special tokens): token shards store uint16 ids.
    public static let maxVocabSize = 65536

    public static let ranksFile = "tokenizer.tiktoken"
    public static let infoFile = "tokenizer_info.json"
    /// Where directories written by earlier versions keep the same facts.
    public static let legacyInfoFile = "tokenizer.json"

    /// Writes tokenizer.tiktoken and tokenizer_info.json into `dir` (created if needed),
    /// atomically; an earlier version's tokenizer.json there is removed.
    public func save(to dir: String) throws {
        try AtomicFile.makeDirectories(dir)
        AtomicFile.removeStale(in: dir)
        var lines = ""
        for (r, b) in tokenBytes.enumerated() { lines += "\(Data(b).base64EncodedString()) \(r)\n" }
        try AtomicFile.write(Data(lines.utf8), to: "\(dir)/\(Self.ranksFile)")
        let info: [String: Any] = [
            "pattern": SplitPattern.pattern,
            "special_tokens": Dictionary(uniqueKeysWithValues: zip(specialTokens, specialIDs.map(Int.init))),
            "vocab_size": vocabSize,
        ]
        let json = try JSONSerialization.data(withJSONObject: info, options: [.prettyPrinted, .sortedKeys])
        try AtomicFile.write(json, to: "\(dir)/\(Self.infoFile)")
        let legacy = "\(dir)/\(Self.legacyInfoFile)"
        if let data = FileManager.default.contents(atPath: legacy), Self.isLegacyInfo(data) {
            try FileManager.default.removeItem(atPath: legacy)
        }
    }

    /// Whether `data` is this tool's own info (not a Hugging Face tokenizer.json).
    static func isLegacyInfo(_ data: Data) -> Bool {
        guard let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else { return false }
        return object["pattern"] != nil && object["model"] == nil
    }

    /// Reads a tokenizer directory; errors name the file and line.
    public static func load(from dir: String) throws -> Tokenizer {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: dir, isDirectory: &isDir), isDir.boolValue else {
            throw TokenizerError("\(dir): no such tokenizer directory (make one with `nanochat tokenizer train`)")
        }
        let path = "\(dir)/\(ranksFile)"
        guard let data = try FolderFile.contents(path) else {
            throw TokenizerError("\(path): missing (make it with `nanochat tokenizer train --out \(dir)`)")
        }
        let tokenizer = try parseRanks(data, path: path)
        var infoPath = "\(dir)/\(infoFile)"
        var found = try FolderFile.contents(infoPath)
        if found == nil, let legacy = try FolderFile.contents("\(dir)/\(legacyInfoFile)"), isLegacyInfo(legacy) {
            (infoPath, found) = ("\(dir)/\(legacyInfoFile)", legacy)
        }
        guard let infoData = found else { throw TokenizerError("\(infoPath): missing") }
        try tokenizer.checkInfo(infoData, path: infoPath)
        return tokenizer
    }

    /// A tokenizer from the bytes of a tokenizer.tiktoken file (`path` names it in errors).
    public static func parseRanks(_ data: Data, path: String) throws -> Tokenizer {
        guard let text = String(data: data, encoding: .utf8) else { throw TokenizerError("\(path): not UTF-8 text") }
        var bytes: [[UInt8]] = []
        for (n, line) in text.split(separator: "\n", omittingEmptySubsequences: true).enumerated() {
            let fields = line.split(separator: " ")
            guard fields.count == 2, let b = Data(base64Encoded: String(fields[0])), let r = Int(fields[1]) else {
                throw TokenizerError("\(path):\(n + 1): expected `base64 rank`, got \"\(line.prefix(60))\"")
            }
            guard r == bytes.count else { throw TokenizerError("\(path):\(n + 1): rank \(r) out of order, expected \(bytes.count)") }
            guard r + specialTokens.count < Tokenizer.maxVocabSize else {
                throw TokenizerError("\(path):\(n + 1): more than \(Tokenizer.maxVocabSize - specialTokens.count) ranks; with the \(specialTokens.count) special tokens the vocabulary would exceed \(Tokenizer.maxVocabSize), the most a uint16 token shard holds")
            }
            bytes.append([UInt8](b))
        }
        do { return try Tokenizer(tokenBytes: bytes) } catch let e as TokenizerError { throw TokenizerError("\(path): \(e.message)") }
    }

    /// Checks the bytes of tokenizer_info.json against this tokenizer: nanochat's split pattern,
    /// the same vocabulary size, and (when listed) the special tokens at this tokenizer's ids.
    public func checkInfo(_ data: Data, path: String) throws {
        guard let info = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw TokenizerError("\(path): not a JSON object")
        }
        guard info["pattern"] as? String == SplitPattern.pattern else {
            throw TokenizerError("\(path): the split pattern differs from nanochat's; this tokenizer was not made by this tool")
        }
        guard JSONNumber.strictInt(info["vocab_size"]) == vocabSize else {
            throw TokenizerError("\(path): vocab_size \(JSONNumber.describe(info["vocab_size"])) but \(Self.ranksFile) has \(tokenBytes.count) ranks + \(specialTokens.count) special tokens = \(vocabSize)")
        }
        if let given = info["special_tokens"] {
            guard let object = given as? [String: Any] else {
                throw TokenizerError("\(path): special_tokens is not an object of token → id")
            }
            var special: [String: Int] = [:]
            for (token, id) in object {
                guard let n = JSONNumber.strictInt(id) else {
                    throw TokenizerError("\(path): special_tokens[\"\(token)\"] is \(JSONNumber.describe(id)), not an integer id")
                }
                special[token] = n
            }
            try checkSpecialIDs(special, path: path, field: "special_tokens")
        }
    }

    /// Checks that a file's special tokens (name → id, from its `field`) are this tokenizer's,
    /// naming the ones that differ.
    public func checkSpecialIDs(_ given: [String: Int], path: String, field: String) throws {
        let ours = Dictionary(uniqueKeysWithValues: zip(specialTokens, specialIDs.map(Int.init)))
        guard given == ours else {
            let wrong = Set(given.keys).union(ours.keys).filter { given[$0] != ours[$0] }.sorted()
            throw TokenizerError("\(path): \(field) differ from this tool's special tokens (\(wrong.joined(separator: ", "))): "
                                 + "expected \(specialTokens.joined(separator: " ")) as ids \(specialIDs.first ?? 0)...\(specialIDs.last ?? 0) in that order")
        }
    }
}

/// Reusable buffers for the merge loop of one piece: parts as a linked list over the bytes,
/// candidate joins in a heap keyed by (rank, start), so long pieces cost O(n log n).
struct MergeScratch {
    private var token: [Int32] = [], next: [Int32] = [], prev: [Int32] = []
    private var heap = BinaryHeap<JoinCandidate>()

    /// A possible join of the part starting at byte `start` with the next part: the lowest
    /// rank first, the leftmost on ties (tiktoken's order).
    struct JoinCandidate: Comparable {
        let rank: Int32, start: Int32
        static func < (a: Self, b: Self) -> Bool { a.rank < b.rank || (a.rank == b.rank && a.start < b.start) }
    }

    /// The join of the part at `i` with the next one, pushed if it is a token.
    private mutating func consider(_ i: Int32, _ joins: [UInt64: Int32]) {
        let j = next[Int(i)]
        guard j >= 0, let r = joins[pairKey(token[Int(i)], token[Int(j)])] else { return }
        heap.push(JoinCandidate(rank: r, start: i))
    }

    /// Merges `piece` (≥ 2 bytes) as tiktoken does and appends the resulting ids.
    mutating func merge(_ piece: ArraySlice<UInt8>, joins: [UInt64: Int32], into out: inout [Int32]) {
        let n = piece.count
        token.removeAll(keepingCapacity: true); next.removeAll(keepingCapacity: true)
        prev.removeAll(keepingCapacity: true); heap.removeAll()
        for (k, b) in piece.enumerated() {
            token.append(Int32(b)); next.append(k + 1 < n ? Int32(k + 1) : -1); prev.append(Int32(k - 1))
        }
        for k in 0..<(n - 1) { consider(Int32(k), joins) }
        while let candidate = heap.pop() {
            let (rank, i) = (candidate.rank, candidate.start)
            // Stale when the part was absorbed (token -1), or it or its neighbour changed since.
            let j = next[Int(i)]
            guard token[Int(i)] >= 0, j >= 0, joins[pairKey(token[Int(i)], token[Int(j)])] == rank else { continue }
            token[Int(i)] = rank
            token[Int(j)] = -1
            let after = next[Int(j)]
            next[Int(i)] = after
            if after >= 0 { prev[Int(after)] = i }
            if prev[Int(i)] >= 0 { consider(prev[Int(i)], joins) }
            consider(i, joins)
        }
        var k: Int32 = 0
        while k >= 0 { out.append(token[Int(k)]); k = next[Int(k)] }
    }
}

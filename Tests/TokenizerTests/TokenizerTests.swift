// The tokenizer: ids equal tiktoken's (fixtures from tools/make_tokenizer_fixtures.py) and a
// naive reference BPE written here; decode(encode(s)) == s on random and adversarial
// Unicode; invalid UTF-8 rejected with its offset; training by hand on a small example;
// files round-trip and bad ones are named.
import Foundation
import Testing
import Tensor
import Tokenizer

let tokenizerFixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures").path
let corpusPath = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .appendingPathComponent("../../data/tinyshakespeare.txt").standardized.path

/// tiktoken's merge loop written the obvious way: parts start as the piece's bytes; while
/// some adjacent pair's joined bytes are a token, join the pair of lowest rank (leftmost on
/// ties). Quadratic per piece, on [UInt8] keys.
func referenceEncode(_ text: String, ranks: [[UInt8]: Int32]) -> [Int32] {
    let bytes = Array(text.utf8)
    var out: [Int32] = []
    for r in SplitPattern.pieces(text) {
        var parts = bytes[r].map { [$0] }
        while parts.count > 1 {
            var best: (rank: Int32, at: Int)?
            for k in 0..<(parts.count - 1) {
                if let rank = ranks[parts[k] + parts[k + 1]], best == nil || rank < best!.rank { best = (rank, k) }
            }
            guard let (_, k) = best else { break }
            parts[k] += parts[k + 1]
            parts.remove(at: k + 1)
        }
        out += parts.map { ranks[$0]! }
    }
    return out
}

/// Adversarial strings: contractions in odd cases, CR/LF runs, combining marks, emoji with
/// ZWJ and skin tones, Unicode spaces and digits, a lone combining mark, a BOM.
let adversarialStrings = [
    "", "a", " ", "\r\n", "\r\r\n\n \n", "DON'T we'LL 'Ve x'RE' ſ's", "e\u{301}\u{302}", "A\u{30A}",
    "👨‍👩‍👧 👍🏽 🇫🇷", "\u{FEFF}bom", "٣٤٥ Ⅻ ½", "\u{3000}\u{3000}x", "\u{85}\u{2028}\u{A0}", "\t\t\tx  \n",
    "a\u{200B}b\u{200D}c", "\u{300}", "日本語のテキスト", "Привет, мир!", String(repeating: "ab", count: 3000),
]

func randomUnicode(_ rng: inout SeededGenerator, count: Int) -> String {
    var s = String.UnicodeScalarView()
    for _ in 0..<count {
        let r = rng.nextUnit()
        var v: UInt32
        if r < 0.5 { v = UInt32.random(in: 32...126, using: &rng) }
        else if r < 0.6 { v = [9, 10, 13, 32, 0x85, 0xA0, 0x2028, 0x3000].randomElement(using: &rng)! }
        else if r < 0.8 { v = UInt32.random(in: 0x80...0x2FFF, using: &rng) }
        else { v = UInt32.random(in: 0x10000...0x10FFFF, using: &rng) }
        if (0xD800...0xDFFF).contains(v) { v = 65 }
        s.append(Unicode.Scalar(v)!)
    }
    return String(s)
}

@Suite struct TokenizerTests {
    let fixture: Tokenizer
    init() throws { fixture = try Tokenizer.load(from: tokenizerFixtures + "/tokenizer") }

    /// The split pattern's pieces by value, as Python's `regex` module finds them with the
    /// same pattern: numbers in pieces of at most two digits, at the end of the text as
    /// anywhere (the reference encoder above splits with this same code, so only values
    /// written out here pin it).
    @Test(arguments: [
        ("abc 42", ["abc", " ", "42"]), ("x 1234567", ["x", " ", "12", "34", "56", "7"]), ("99", ["99"]), ("7", ["7"]),
        ("a1", ["a", "1"]), ("year 2024.", ["year", " ", "20", "24", "."]), ("٣٤٥ 12", ["٣٤", "٥", " ", "12"]),
        ("route 66", ["route", " ", "66"]),
    ] as [(String, [String])])
    func numbersSplitAsTheRegexSplitsThem(text: String, pieces: [String]) {
        let bytes = Array(text.utf8)
        #expect(SplitPattern.pieces(text).map { String(decoding: bytes[$0], as: UTF8.self) } == pieces)
    }

    /// The facts file is tokenizer_info.json (tokenizer.json is Hugging Face's name); a
    /// directory from an earlier version, holding them as tokenizer.json, still loads, and
    /// saving into it replaces that file.
    /// The identity tells apart tokenizers whose tokens' bytes, laid end to end, are the
    /// same but cut differently ("ab", "cde" against "abc", "de"), or whose tokens are the
    /// same in another order.
    @Test func identityTellsApartTokensCutDifferently() throws {
        let bytes = (0..<256).map { [UInt8($0)] }
        let a = try Tokenizer(tokenBytes: bytes + [Array("ab".utf8), Array("cde".utf8)])
        let b = try Tokenizer(tokenBytes: bytes + [Array("abc".utf8), Array("de".utf8)])
        let c = try Tokenizer(tokenBytes: bytes + [Array("cde".utf8), Array("ab".utf8)])
        #expect(a.identity != b.identity && a.identity != c.identity && b.identity != c.identity)
        #expect(a.identity == (try Tokenizer(tokenBytes: bytes + [Array("ab".utf8), Array("cde".utf8)])).identity)
        #expect(a.identity.count == 16 && a.identity.allSatisfy(\.isHexDigit))
    }

    /// Shards and checkpoints record the identity, so it must not move between versions:
    /// FNV-1a's published vectors, and the fixture tokenizer's identity as data.json and
    /// the evaluation fixture's meta file hold it.
    @Test func identityIsFNV1aAndStaysPut() {
        func digest(_ bytes: [UInt8]) -> UInt64 { var d = Digest(); d.add(bytes); return d.value }
        #expect(digest([]) == 0xcbf2_9ce4_8422_2325)
        #expect(digest(Array("a".utf8)) == 0xaf63_dc4c_8601_ec8c)
        #expect(digest(Array("foobar".utf8)) == 0x8594_4171_f739_67e8)
        var text = Digest()
        text.add("ab")   // a string is followed by a 0 byte, so "ab" + "c" differs from "a" + "bc"
        #expect(text.value == digest([0x61, 0x62, 0]))
        #expect(fixture.identity == "a38bd7d3a7e97843")
    }

    @Test func infoFileNameAndEarlierDirectories() throws {
        let fm = FileManager.default
        let dir = scratchPath("tok")
        try fixture.save(to: dir)
        #expect(fm.fileExists(atPath: dir + "/tokenizer_info.json") && !fm.fileExists(atPath: dir + "/tokenizer.json"))
        try fm.moveItem(atPath: dir + "/tokenizer_info.json", toPath: dir + "/tokenizer.json")
        let legacy = try Tokenizer.load(from: dir)
        #expect(legacy.identity == fixture.identity)
        try legacy.save(to: dir)
        #expect(fm.fileExists(atPath: dir + "/tokenizer_info.json") && !fm.fileExists(atPath: dir + "/tokenizer.json"))
        // A Hugging Face tokenizer.json beside the ranks is not taken for ours, nor removed.
        try fm.removeItem(atPath: dir + "/tokenizer_info.json")
        try Data(#"{"version": "1.0", "model": {"type": "BPE"}}"#.utf8).write(to: URL(fileURLWithPath: dir + "/tokenizer.json"))
        #expect(throws: TokenizerError.self) { try Tokenizer.load(from: dir) }
        try fixture.save(to: dir)
        let reloaded = try Tokenizer.load(from: dir)
        #expect(fm.fileExists(atPath: dir + "/tokenizer.json") && reloaded.identity == fixture.identity)
    }

    /// tokenizer_info.json's numbers are integers, not booleans Foundation would read as 1,
    /// and the message shows what the file holds; a file linked from outside the directory
    /// is not read, one linked inside it is.
    @Test func infoNumbersAreStrictAndLinksStayInside() throws {
        let fm = FileManager.default
        let dir = scratchPath("tok-strict"), info = dir + "/tokenizer_info.json"
        try fixture.save(to: dir)
        let good = try #require(fm.contents(atPath: info))
        var object = try #require(try JSONSerialization.jsonObject(with: good) as? [String: Any])
        object["vocab_size"] = true
        try JSONSerialization.data(withJSONObject: object).write(to: URL(fileURLWithPath: info))
        let error = try #require(throws: TokenizerError.self) { try Tokenizer.load(from: dir) }
        #expect(error.description.contains("vocab_size true"), "\(error)")
        object["vocab_size"] = fixture.vocabSize
        var special = try #require(object["special_tokens"] as? [String: Any])
        special["<|bos|>"] = false
        object["special_tokens"] = special
        try JSONSerialization.data(withJSONObject: object).write(to: URL(fileURLWithPath: info))
        let second = try #require(throws: TokenizerError.self) { try Tokenizer.load(from: dir) }
        #expect(second.description.contains("special_tokens[\"<|bos|>\"] is false"), "\(second)")

        // The ranks as a link: inside the directory it is read, out of it refused.
        try good.write(to: URL(fileURLWithPath: info))
        let ranks = dir + "/tokenizer.tiktoken", outside = scratchPath("tok-outside")
        try fm.createDirectory(atPath: outside, withIntermediateDirectories: true)
        try fm.moveItem(atPath: ranks, toPath: dir + "/ranks-copy")
        try fm.createSymbolicLink(atPath: ranks, withDestinationPath: "ranks-copy")
        #expect(try Tokenizer.load(from: dir).identity == fixture.identity)
        try fm.moveItem(atPath: dir + "/ranks-copy", toPath: outside + "/ranks")
        try fm.removeItem(atPath: ranks)
        try fm.createSymbolicLink(atPath: ranks, withDestinationPath: outside + "/ranks")
        let linked = try #require(throws: TensorFileError.self) { try Tokenizer.load(from: dir) }
        #expect(linked.path == ranks && linked.message.contains("outside its folder"), "\(linked)")
    }

    @Test func idsEqualTiktokens() throws {
        let data = try Data(contentsOf: URL(fileURLWithPath: tokenizerFixtures + "/tokenizer_cases.json"))
        let cases = try #require(try JSONSerialization.jsonObject(with: data) as? [[String: Any]])
        #expect(cases.count > 50)
        for (i, c) in cases.enumerated() {
            let text = try #require(c["text"] as? String), ids = try #require(c["ids"] as? [Int])
            let ours = fixture.encode(text).map(Int.init)
            let at = zip(ours, ids).enumerated().first { $0.element.0 != $0.element.1 }?.offset ?? min(ours.count, ids.count)
            #expect(ours == ids, "case \(i): first difference at id \(at) of \(ids.count)")
        }
    }

    @Test func idsEqualTheReferenceBPE() throws {
        let ranks = Dictionary(uniqueKeysWithValues: fixture.tokenBytes.enumerated().map { ($1, Int32($0)) })
        var rng = SeededGenerator(seed: 3)
        let corpus = try String(contentsOfFile: corpusPath, encoding: .utf8)
        for text in adversarialStrings + [randomUnicode(&rng, count: 4000), String(corpus.prefix(50_000))] {
            #expect(fixture.encode(text) == referenceEncode(text, ranks: ranks))
        }
    }

    @Test func decodeInvertsEncode() throws {
        var rng = SeededGenerator(seed: 11)
        for text in adversarialStrings + (0..<20).map({ _ in randomUnicode(&rng, count: 500) }) {
            #expect(try fixture.decode(fixture.encode(text)) == text)
        }
        let bos = try fixture.decode([fixture.bosID] + fixture.encode("hi"))
        #expect(bos == "<|bos|>hi")
        #expect(throws: TokenizerError("token id 1024 is outside the vocabulary (0..<1024)")) { try fixture.decode([1024]) }
    }

    @Test func threadCountDoesNotChangeIDs() throws {
        let corpus = try String(contentsOfFile: corpusPath, encoding: .utf8)
        var rng = SeededGenerator(seed: 5)
        let random = randomUnicode(&rng, count: 200_000)
        let (one, randomOne) = Parallel.withThreadCount(1) { (fixture.encode(corpus), fixture.encode(random)) }
        #expect(one == fixture.encodeSerially(corpus))
        // Lines parted by lines of spaces: "\n  \n" is one piece, so no part may begin after
        // a newline that spaces follow.
        let indented = corpus.split(separator: "\n", omittingEmptySubsequences: false).map { "   " + $0 }.joined(separator: "\n  \n")
        // A tokenizer trained on such text merges across the newline and the spaces, so a
        // part begun there would give other ids.
        let spaced = try Tokenizer.train([indented], vocabSize: 300)
        #expect(spaced.encode("\n  \n").count < 4, "the test needs a merge across a newline and spaces")
        let indentedOne = spaced.encodeSerially(indented)
        for n in [2, 3, 7] {
            Parallel.withThreadCount(n) {
                #expect(fixture.encode(corpus) == one, "\(n) threads")
                #expect(fixture.encode(random) == randomOne, "\(n) threads")
                let same = spaced.encode(indented) == indentedOne   // (a Bool: the ids would flood the message)
                #expect(same, "\(n) threads, lines parted by lines of spaces")
            }
        }
    }

    @Test func invalidUTF8IsRejectedWithItsOffset() throws {
        let cases: [([UInt8], Int, String)] = [
            ([0x61, 0xFF, 0x62], 1, "ff"),          // never valid
            ([0x61, 0x62, 0xE2, 0x82], 2, "e2"),    // truncated 3-byte sequence
            ([0xC0, 0xAF], 0, "c0"),                // overlong '/'
            ([0x20, 0xED, 0xA0, 0x80], 1, "ed"),    // a UTF-16 surrogate
        ]
        for (bytes, offset, hex) in cases {
            #expect(throws: TokenizerError("in.txt: invalid UTF-8 at byte offset \(offset) (byte 0x\(hex)); the tokenizer reads UTF-8 text only")) {
                try fixture.encode(utf8: bytes, source: "in.txt")
            }
        }
        let ok = try fixture.encode(utf8: Array("né".utf8))
        #expect(ok == fixture.encode("né"))
    }

    /// Overlapping joins of equal rank go leftmost first, as tiktoken's loop: with the single
    /// merge "aa", "aaa" is [aa, a], not [a, aa], and "aaaaa" is [aa, aa, a].
    @Test func equalRankJoinsGoLeftmostFirst() throws {
        let bytes = (0..<256).map { [UInt8($0)] } + [Array("aa".utf8)]
        let tok = try Tokenizer(tokenBytes: bytes)
        let aa: Int32 = 256, a: Int32 = 97
        #expect(tok.encode("aaa") == [aa, a])
        #expect(tok.encode("aaaaa") == [aa, aa, a])
        #expect(tok.encodeSerially("aaaaaaa") == [aa, aa, aa, a])
        let ranks = Dictionary(uniqueKeysWithValues: bytes.enumerated().map { ($1, Int32($0)) })
        #expect(referenceEncode("aaa", ranks: ranks) == [aa, a], "the reference breaks ties the same way")
    }

    /// Token 0 (the byte 0x00) joins like any other: merges whose left part is id 0, and the
    /// highest byte 0xFF, encode as the reference BPE and tiktoken's loop do.
    @Test func theFirstAndLastBytesJoin() throws {
        let bytes = (0..<256).map { [UInt8($0)] } + [[0, 0], [0, 0, 0], [0xc3, 0xbf], [0, 0x61]]
        let tok = try Tokenizer(tokenBytes: bytes)
        let ranks = Dictionary(uniqueKeysWithValues: bytes.enumerated().map { ($1, Int32($0)) })
        #expect(tok.encode("\u{0}\u{0}") == [256])
        #expect(tok.encode("\u{0}\u{0}\u{0}") == [257])
        #expect(tok.encode("\u{0}\u{0}\u{0}\u{0}\u{0}") == [256, 257], "[00][00]0, then [00]+0 on the right")
        #expect(tok.encode("ÿÿ") == [258, 258])
        for text in ["\u{0}\u{0}", "\u{0}\u{0}\u{0}", "\u{0}\u{0}\u{0}\u{0}\u{0}", "x\u{0}\u{0}\u{0} ÿÿ\u{0}", "\u{0}a\u{0}\u{0}a"] {
            #expect(tok.encode(text) == referenceEncode(text, ranks: ranks), "\(Array(text.utf8))")
            #expect(tok.encodeSerially(text) == tok.encode(text))
            #expect(try tok.decode(tok.encode(text)) == text)
        }
    }

    @Test func trainingMergesByHand() {
        // "aaabdaaabac" is one piece. Pair counts: aa 4, ab 2, others 1 → aa becomes 256:
        // [256 a b d 256 a b a c]. Then (256,a) and (a,b) both occur twice; ties go to the
        // smaller pair, (a,b) → 257: [256 257 d 256 257 a c]. Then (256,257) twice → 258.
        let (pieces, counts) = BPETraining.countPieces(["aaabdaaabac"])
        let merges = BPETraining.train(pieces: pieces, counts: counts, mergeCount: 3)
        #expect(merges.map { [$0.0, $0.1] } == [[97, 97], [97, 98], [256, 257]])
        // Counts weigh pieces: "ab" three times beats "cd" twice whatever their order.
        let m2 = BPETraining.train(pieces: [Array("cd".utf8), Array("ab".utf8)], counts: [2, 3], mergeCount: 5)
        #expect(m2.map { [$0.0, $0.1] } == [[97, 98], [99, 100]], "stops when no pair is left")
    }

    @Test func retrainingReproducesTheFixtureRanks() throws {
        let corpus = try String(contentsOfFile: corpusPath, encoding: .utf8)
        let tok = try Tokenizer.train([corpus], vocabSize: 1024)
        #expect(tok.tokenBytes == fixture.tokenBytes)
        #expect(tok.vocabSize == 1024 && tok.bosID == 1015 && fixture.specialIDs.last == 1023)
    }

    /// Counting pieces in parallel batches (what `tokenizer train` does on a corpus) gives the
    /// counts of one serial pass over the same texts, so the same merges, whatever the thread
    /// count and batching.
    @Test func parallelPieceCountsTrainTheSameMerges() throws {
        let corpus = try String(contentsOfFile: corpusPath, encoding: .utf8)
        let paragraphs = corpus.components(separatedBy: "\n\n").map { $0 + "\n\n" }
        let serial = try Tokenizer.train(paragraphs, vocabSize: 1024)
        for (threads, batch) in [(1, 7222), (2, 1000), (2, 37)] {
            var counter = BPETraining.PieceCounter()
            try Parallel.withThreadCount(threads) {
                for start in stride(from: 0, to: paragraphs.count, by: batch) {
                    counter.add(Array(paragraphs[start..<min(start + batch, paragraphs.count)]))
                }
                let tok = try Tokenizer.train(pieces: counter.pieceBytes, counts: counter.counts, vocabSize: 1024)
                #expect(tok.tokenBytes == serial.tokenBytes, "\(threads) threads, batches of \(batch)")
            }
            #expect(counter.characters == paragraphs.reduce(0) { $0 + $1.unicodeScalars.count })
        }
    }

    @Test func filesRoundTripAndBadOnesAreNamed() throws {
        let dir = scratchPath("tok")
        try fixture.save(to: dir)
        let back = try Tokenizer.load(from: dir)
        #expect(back.tokenBytes == fixture.tokenBytes)
        let info = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/tokenizer_info.json"))) as? [String: Any]
        #expect((info?["special_tokens"] as? [String: Int])?["<|bos|>"] == 1015)
        // The ranks file is the one tiktoken's load_tiktoken_bpe read for the fixtures, byte for byte.
        #expect(try Data(contentsOf: URL(fileURLWithPath: dir + "/tokenizer.tiktoken"))
                == Data(contentsOf: URL(fileURLWithPath: tokenizerFixtures + "/tokenizer/tokenizer.tiktoken")))

        #expect(throws: TokenizerError("\(dir)/nope: no such tokenizer directory (make one with `nanochat tokenizer train`)")) {
            try Tokenizer.load(from: dir + "/nope")
        }
        let ranks = dir + "/tokenizer.tiktoken"
        var lines = try String(contentsOfFile: ranks, encoding: .utf8).split(separator: "\n").map(String.init)
        lines[300] = "!!notbase64 300"
        try lines.joined(separator: "\n").write(toFile: ranks, atomically: true, encoding: .utf8)
        #expect(throws: TokenizerError("\(ranks):301: expected `base64 rank`, got \"!!notbase64 300\"")) { try Tokenizer.load(from: dir) }
        lines.removeLast()
        lines[300] = "\(Data(fixture.tokenBytes[300]).base64EncodedString()) 300"
        try lines.joined(separator: "\n").write(toFile: ranks, atomically: true, encoding: .utf8)
        #expect(throws: TokenizerError("\(dir)/tokenizer_info.json: vocab_size 1024 but tokenizer.tiktoken has 1014 ranks + 9 special tokens = 1023")) {
            try Tokenizer.load(from: dir)
        }
        try FileManager.default.removeItem(atPath: ranks)
        #expect(throws: TokenizerError("\(ranks): missing (make it with `nanochat tokenizer train --out \(dir)`)")) { try Tokenizer.load(from: dir) }
    }

    /// A ranks file may fill the 65,536 ids a uint16 token shard holds, the special tokens
    /// included, and no more: one rank past that is refused naming its line.
    @Test func aRanksFileFillsAtMostTheUInt16Ids() throws {
        let most = 65536 - specialTokens.count
        // The 256 bytes, then distinct two-byte tokens.
        let tokens = (0..<256).map { [UInt8($0)] } + (0..<(most - 256 + 1)).map { [UInt8($0 >> 8), UInt8($0 & 0xff)] }
        func file(_ count: Int) -> Data {
            Data(tokens.prefix(count).enumerated().map { "\(Data($1).base64EncodedString()) \($0)\n" }.joined().utf8)
        }
        let full = try Tokenizer.parseRanks(file(most), path: "ranks")
        #expect(full.vocabSize == 65536 && full.specialIDs.last == 65535)
        #expect(full.encode("\u{1}\u{2}") == [256 + 0x0102])
        #expect(throws: TokenizerError("ranks:\(most + 1): more than \(most) ranks; with the \(specialTokens.count) special tokens the vocabulary would exceed 65536, the most a uint16 token shard holds")) {
            try Tokenizer.parseRanks(file(most + 1), path: "ranks")
        }
    }

    @Test func vocabTooLargeForTheTextIsAnError() {
        #expect(throws: TokenizerError("the text has only enough distinct pairs for 3 merges; vocab size 300 needs 35 — use more text or a smaller vocab size")) {
            try Tokenizer.train(["ab cd"], vocabSize: 300)
        }
    }
}

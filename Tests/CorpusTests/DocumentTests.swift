// Documents from JSONL (plain and zstd, several frames), text files (paragraphs, whole file,
// cut at the bound) and inputs given as directories and globs; bad rows named by file and
// line, or skipped and counted when asked.
import Corpus
import Foundation
import Testing

func scratch(_ name: String) -> String {
    let dir = NSTemporaryDirectory() + "nanochat-corpus-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
    try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    return dir + "/" + name
}

func allDocuments(_ inputs: [String], _ options: DocumentOptions = DocumentOptions()) throws -> [String] {
    let stream = DocumentStream(files: try CorpusFile.expand(inputs), options: options)
    var out: [String] = []
    while let d = try stream.next() { out.append(d) }
    return out
}

@Suite struct DocumentTests {
    let jsonl = fixtures + "/jsonl"

    @Test func jsonlPlainAndZstdGiveTheTextsWritten() throws {
        let data = try Data(contentsOf: URL(fileURLWithPath: jsonl + "/expected.json"))
        let expected = try #require(try JSONSerialization.jsonObject(with: data) as? [String])
        #expect(try allDocuments([jsonl + "/docs.jsonl"]) == expected)
        #expect(try allDocuments([jsonl + "/docs.jsonl.zst"]) == expected)
        let stream = DocumentStream(files: try CorpusFile.expand([jsonl + "/docs.jsonl.zst"]))
        while try stream.next() != nil {}
        #expect(stream.bytesRead == stream.totalBytes)
    }

    @Test func badJSONLLinesAreNamedOrSkipped() throws {
        let path = jsonl + "/bad.jsonl"
        #expect { _ = try allDocuments([path]) } throws: { "\($0)" == "\(path): line 2: not JSON (--skip-bad skips such rows)" }
        let stream = DocumentStream(files: try CorpusFile.expand([path]), options: DocumentOptions(skipBad: true))
        var docs: [String] = []
        while let d = try stream.next() { docs.append(d) }
        #expect(docs == ["fine", "last"])
        #expect(stream.skipped == 5)
        #expect(stream.skipReasons == [
            "\(path), line 2: not JSON",
            "\(path), line 3: no \"text\" field (it has body; choose one with --field)",
            "\(path), line 4: the \"text\" field is not a string",
            "\(path), line 5: not a JSON object",
            "\(path), line 6: not UTF-8",
        ])
        #expect(try allDocuments([path], DocumentOptions(field: "body", skipBad: true)) == ["no text field"])
    }

    /// A line is held whole until its newline, up to 1 GiB: past that (here, /dev/zero's
    /// endless line) it is refused naming the line, not held.
    @Test func aLineOverOneGiBIsRefused() throws {
        let reader = try LineReader(path: "/dev/zero")
        #expect(throws: CorpusError(path: "/dev/zero", "line 1 is longer than 1024 MB")) { _ = try reader.next() }
    }

    @Test func corruptZstdIsAnErrorNamingTheFile() throws {
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: jsonl + "/docs.jsonl.zst")))
        let truncated = scratch("cut.jsonl.zst"), corrupt = scratch("bad.jsonl.zst")
        try Data(bytes.prefix(bytes.count - 10)).write(to: URL(fileURLWithPath: truncated))
        bytes[0] ^= 0xff
        try Data(bytes).write(to: URL(fileURLWithPath: corrupt))
        #expect { _ = try allDocuments([truncated]) } throws: { "\($0)".hasPrefix(truncated) && "\($0)".contains("truncated zstd data") }
        #expect { _ = try allDocuments([corrupt]) } throws: { "\($0)".hasPrefix(corrupt) && "\($0)".contains("corrupt zstd data") }
    }

    @Test func textParagraphsAndWholeFiles() throws {
        let path = scratch("t.txt")
        try "A:\nhello\n\n  \nB:\r\nbye\n\n\nC:\nend".write(toFile: path, atomically: false, encoding: .utf8)
        #expect(try allDocuments([path]) == ["A:\nhello\n", "B:\r\nbye\n", "C:\nend\n"])
        #expect(try allDocuments([path], DocumentOptions(split: .file)) == ["A:\nhello\n\n  \nB:\r\nbye\n\n\nC:\nend"])
        // Cut at 16 bytes: at line breaks, then inside the one long line at a space.
        try "one two three four five six seven eight\nshort\n".write(toFile: path, atomically: false, encoding: .utf8)
        let pieces = try allDocuments([path], DocumentOptions(split: .file, maxDocumentBytes: 16))
        #expect(pieces.joined() == "one two three four five six seven eight\nshort\n")
        #expect(pieces.allSatisfy { $0.utf8.count <= 16 })
        #expect(pieces == ["one two three ", "four five six ", "seven eight\n", "short\n"])
        // The default bound is SPEC's 1 MiB: a file of 2^20 bytes is one document, one byte
        // more is cut (at the bound: it holds no space or newline).
        for (size, count) in [(1 << 20, 1), ((1 << 20) + 1, 2)] {
            try String(repeating: "x", count: size).write(toFile: path, atomically: false, encoding: .utf8)
            #expect(try allDocuments([path], DocumentOptions(split: .file)).map(\.utf8.count) == (count == 1 ? [size] : [1 << 20, 1]))
        }
        let bad = scratch("bad.txt")
        try Data([0x61, 0x0a, 0x0a, 0xc3, 0x28, 0x0a]).write(to: URL(fileURLWithPath: bad))
        #expect { _ = try allDocuments([bad]) } throws: { "\($0)" == "\(bad): line 3: the text is not valid UTF-8 (byte 0xc3 at offset 0 of the line) (--skip-bad skips such rows)" }
    }

    /// Where a cut falls: after the last newline in the piece's second half (before a later
    /// space), else after the last space there, else at the bound; a newline or space in the
    /// first half is not used.
    @Test func cutsFallAtNewlinesThenSpacesInTheSecondHalf() {
        #expect(DocumentStream.cut("aaaa bbbb\ncc dd ee ff gg\nhh", at: 16) == ["aaaa bbbb\n", "cc dd ee ff gg\n", "hh"])
        #expect(DocumentStream.cut("ab\ncdefghijklmnop qrst", at: 16) == ["ab\ncdefghijklmno", "p qrst"])
        #expect(DocumentStream.cut("ab cdefghij klmnopq", at: 16) == ["ab cdefghij ", "klmnopq"])
        #expect(DocumentStream.cut("exactly sixteen!", at: 16) == ["exactly sixteen!"])
    }

    /// A cut never splits a character: pieces of multi-byte text with no spaces stay UTF-8.
    @Test func cuttingKeepsCharactersWhole() {
        let text = String(repeating: "日本語✓", count: 50)
        for bound in [16, 17, 18, 19, 33] {
            let pieces = DocumentStream.cut(text, at: bound)
            #expect(pieces.joined() == text)
            #expect(pieces.allSatisfy { $0.utf8.count <= bound && !$0.isEmpty })
        }
    }

    @Test func directoriesAndGlobsExpandInNameOrder() throws {
        let dir = (scratch("x") as NSString).deletingLastPathComponent
        for (name, text) in [("b.txt", "two\n"), ("a.txt", "one\n"), ("c.jsonl", "{\"text\": \"three\"}\n"), ("data.json", "{}"), (".hidden", "no")] {
            try text.write(toFile: "\(dir)/\(name)", atomically: false, encoding: .utf8)
        }
        #expect(try allDocuments([dir]) == ["one\n", "two\n", "three"])
        #expect(try allDocuments(["\(dir)/*.txt"]) == ["one\n", "two\n"])
        #expect { _ = try CorpusFile.expand(["\(dir)/*.parquet"]) } throws: { "\($0)".contains("the pattern matches no file") }
        #expect { _ = try CorpusFile.expand(["\(dir)/nothing.txt"]) } throws: { "\($0)".contains("no such file or directory") }
    }
}

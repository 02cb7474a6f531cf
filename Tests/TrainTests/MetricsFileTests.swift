// metrics.jsonl's appends: a write that fails part-way (a full disk) is cut back off, so the
// file holds whole rows only, whether it held rows before or none, and the error names the
// file and the reason.
import Foundation
import Testing
import Train
#if canImport(Glibc)
import Glibc
#endif

@Suite struct MetricsFileTests {
    @Test func aWriteThatFailsPartWayIsCutBackOff() throws {
        let path = scratchPath("metrics.jsonl")
        #expect(FileManager.default.createFile(atPath: path, contents: Data()))
        func contents() throws -> Data { try Data(contentsOf: URL(fileURLWithPath: path)) }
        // Half of the line reaches the file, then the disk is full.
        let halfThenFull: (Int32, Data) -> Int32? = { fd, bytes in
            let half = bytes.prefix(bytes.count / 2)
            let written = half.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
            return written == half.count ? ENOSPC : EIO
        }
        let first = MetricsRow.evaluation(step: 1, loss: 2.5, bpb: 1.25)
        let second = MetricsRow.evaluation(step: 2, loss: 2.25, bpb: 1.125)

        // The first row of an empty file: back to empty.
        #expect(throws: TrainingError.self) { try MetricsFile.append(first, to: path, write: halfThenFull) }
        let left = try contents()
        #expect(left.isEmpty, "a torn first line was left: \(String(decoding: left, as: UTF8.self))")

        try MetricsFile.append(first, to: path)
        let one = try contents()
        #expect(try MetricsFile.read(path) == [first])

        // A later row: back to the rows before it.
        do {
            try MetricsFile.append(second, to: path, write: halfThenFull)
            Issue.record("a failed write was not reported")
        } catch let error as TrainingError {
            #expect(error.description == "\(path): cannot append to the metrics file: \(String(cString: strerror(ENOSPC)))")
        }
        #expect(try contents() == one)
        try MetricsFile.append(second, to: path)
        #expect(try MetricsFile.read(path) == [first, second])
    }
}

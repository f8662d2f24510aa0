import Foundation
import Testing
import VigilCore
@testable import VigilStorage

/// `FileIO.link`, by which retention puts a part into the archive before the
/// commit that drops it.
@Suite("FileIO.link")
struct FileLinkTests {
    @Test("a new name links; the same file already there is fine; another file there is refused with FAILED_PRECONDITION and kept")
    func link() async throws {
        try await withTemporaryDirectory { directory in
            try FileIO.makeDirectory(directory)
            let source = directory + "/a.part", destination = directory + "/b.part", other = directory + "/c.part"
            try Data("part".utf8).write(to: URL(fileURLWithPath: source))
            try Data("another".utf8).write(to: URL(fileURLWithPath: other))
            try FileIO.link(source, to: destination)
            try FileIO.link(source, to: destination)  // a link an earlier attempt left
            #expect(FileManager.default.contents(atPath: destination) == Data("part".utf8))
            do {
                try FileIO.link(source, to: other)
                Issue.record("linked over another file")
            } catch let error as VigilError {
                #expect(error.code == .failedPrecondition, "\(error)")
            }
            #expect(FileManager.default.contents(atPath: other) == Data("another".utf8), "the other file is untouched")
        }
    }
}

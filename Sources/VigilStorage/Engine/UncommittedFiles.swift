/// The files a flush, merge or retention pass created before its MANIFEST
/// commit. If the pass fails before the commit (a full disk, say), they are
/// removed at once, so that a retry starts clean and a failure costs no
/// space; once committed, the MANIFEST owns them. (A crash in between leaves
/// them for the garbage sweep of the next open.)
struct UncommittedFiles {
    let directory: String
    /// Relative to `directory`.
    private(set) var paths: [String] = []

    init(directory: String) {
        self.directory = directory
    }

    /// Call before the file is created: a half-written one is removed too.
    mutating func add(_ relative: String) {
        paths.append(relative)
    }

    /// The MANIFEST that lists them is in place: they are no longer this pass's to remove.
    mutating func committed() {
        paths.removeAll()
    }

    /// Removes them (best effort: one that cannot be removed is swept at the next open).
    mutating func discard() {
        for path in paths { try? FileIO.remove(directory + "/" + path) }
        paths.removeAll()
    }
}

import NIOSSL

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Loads certificates and private keys from PEM files, saying precisely what
/// is wrong with a file that cannot be used: missing, unreadable, not PEM,
/// PEM of the wrong kind, or damaged. `vigil` uses it for both the server's
/// and the client's TLS flags.
public enum PEMFile {
    /// Why a PEM file could not be used.
    public struct LoadError: Error, Sendable, Hashable, CustomStringConvertible {
        public enum Reason: Sendable, Hashable {
            case missing
            case unreadable(String)
            case notPEM
            case wrongContent(String)
            case encryptedKey
            case invalid(String)
        }

        public var path: String
        public var reason: Reason

        /// What is wrong, without the path: "does not exist", "is not a PEM file …".
        public var problem: String {
            switch reason {
            case .missing: "does not exist"
            case .unreadable(let why): "cannot be read: \(why)"
            case .notPEM: "is not a PEM file (no -----BEGIN ...----- line)"
            case .wrongContent(let what): what
            case .encryptedKey: "holds an encrypted private key; give the key unencrypted (openssl pkey -in KEY -out PLAIN)"
            case .invalid(let why): "is damaged: \(why)"
            }
        }

        public var description: String { "'\(path)' \(problem)" }
    }

    /// Every certificate in the file, in order (a chain: leaf first).
    public static func certificates(at path: String) throws(LoadError) -> [NIOSSLCertificate] {
        let bytes = try contents(of: path)
        let labels = pemLabels(bytes)
        guard !labels.isEmpty else { throw LoadError(path: path, reason: .notPEM) }
        guard labels.contains("CERTIFICATE") else {
            let found = labels.contains { $0.hasSuffix("PRIVATE KEY") } ? "a private key" : "'\(labels[0])'"
            throw LoadError(path: path, reason: .wrongContent("holds \(found), not a certificate (-----BEGIN CERTIFICATE-----)"))
        }
        do {
            let certificates = try NIOSSLCertificate.fromPEMBytes(bytes)
            guard !certificates.isEmpty else { throw LoadError(path: path, reason: .invalid("no certificate could be read")) }
            return certificates
        } catch let error as LoadError {
            throw error
        } catch {
            throw LoadError(path: path, reason: .invalid("its certificate cannot be parsed (\(error))"))
        }
    }

    /// The one private key in the file (PKCS#8, SEC1 EC or PKCS#1 RSA, unencrypted).
    public static func privateKey(at path: String) throws(LoadError) -> NIOSSLPrivateKey {
        let bytes = try contents(of: path)
        let labels = pemLabels(bytes)
        guard !labels.isEmpty else { throw LoadError(path: path, reason: .notPEM) }
        if labels.contains("ENCRYPTED PRIVATE KEY") { throw LoadError(path: path, reason: .encryptedKey) }
        guard labels.contains(where: { $0.hasSuffix("PRIVATE KEY") }) else {
            let found = labels.contains("CERTIFICATE") ? "a certificate" : "'\(labels[0])'"
            throw LoadError(path: path, reason: .wrongContent("holds \(found), not a private key (-----BEGIN PRIVATE KEY-----)"))
        }
        do {
            return try NIOSSLPrivateKey(bytes: bytes, format: .pem)
        } catch {
            throw LoadError(path: path, reason: .invalid("its private key cannot be parsed (\(error))"))
        }
    }

    /// The labels of the file's PEM blocks ("CERTIFICATE", "PRIVATE KEY", …), in order.
    static func pemLabels(_ bytes: [UInt8]) -> [String] {
        let text = String(decoding: bytes, as: UTF8.self)
        var labels: [String] = []
        for line in text.split(whereSeparator: \.isNewline) {
            let line = line.trimmingSuffix(while: \.isWhitespace)
            guard line.hasPrefix("-----BEGIN "), line.hasSuffix("-----"), line.count > 16 else { continue }
            labels.append(String(line.dropFirst(11).dropLast(5)))
        }
        return labels
    }

    /// The file's bytes, read with POSIX calls so that each failure has its own reason.
    static func contents(of path: String) throws(LoadError) -> [UInt8] {
        var status = stat()
        guard stat(path, &status) == 0 else {
            let code = errno
            if code == ENOENT || code == ENOTDIR { throw LoadError(path: path, reason: .missing) }
            throw LoadError(path: path, reason: .unreadable(String(cString: strerror(code))))
        }
        if (status.st_mode & S_IFMT) == S_IFDIR {
            throw LoadError(path: path, reason: .unreadable("it is a directory"))
        }
        let descriptor = open(path, O_RDONLY)
        guard descriptor >= 0 else { throw LoadError(path: path, reason: .unreadable(String(cString: strerror(errno)))) }
        defer { close(descriptor) }
        // Certificates and keys are small; a huge file is not one.
        let limit = 1 << 20
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 16_384)
        while true {
            let count = chunk.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
            if count < 0 {
                if errno == EINTR { continue }
                throw LoadError(path: path, reason: .unreadable(String(cString: strerror(errno))))
            }
            if count == 0 { break }
            bytes.append(contentsOf: chunk[..<count])
            guard bytes.count <= limit else {
                throw LoadError(path: path, reason: .wrongContent("is over 1 MiB: too large to be a PEM certificate or key"))
            }
        }
        return bytes
    }
}

extension Substring {
    fileprivate func trimmingSuffix(while predicate: (Character) -> Bool) -> Substring {
        var end = endIndex
        while end > startIndex, predicate(self[index(before: end)]) { end = index(before: end) }
        return self[startIndex..<end]
    }
}

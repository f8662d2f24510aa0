import Foundation
import VigilCore
import VigilProto
import VigilStorage
import VigilWire

/// Verify: recomputes the hash chain over everything the server stores and
/// reports each problem. Runs beside ingest (the store verifies on a thread
/// of its own and holds up flushes only for the moment it takes its view),
/// and stops between blocks when the call's deadline passes or it is cancelled.
extension AuditService {
    func verify(_ request: Vigil_V1_VerifyRequest, sender: some ResponseSender) async throws -> [String: String] {
        // authorization: admin
        guard request.toSeq == 0 || request.fromSeq <= request.toSeq else {
            throw VigilError(.invalidArgument, "from_seq \(request.fromSeq) is after to_seq \(request.toSeq)")
        }
        var options = VerificationOptions()
        options.fromSeq = request.fromSeq
        options.toSeq = request.toSeq
        options.checkpointDirectory = configuration.checkpoints?.directory
        options.trustedKey = configuration.checkpoints?.key?.publicKey
        options.isCancelled = { Task.isCancelled }
        let report = try await store.verify(options)
        var response = report.proto
        // A report of many problems is cut to fit the client's frame limit (problems_total counts them all).
        while response.serializedBuffer().readableBytes > sender.maxFrameSize && !response.details.isEmpty {
            let keep = response.details.count / 2
            response.details = Array(response.details.prefix(keep))
            response.problems = Array(response.problems.prefix(keep))
        }
        try await sender.send(response)
        return ["vigil.intact": String(report.intact), "vigil.problems": String(report.problemsTotal)]
    }
}

extension Vigil_V1_IngestResponse {
    /// An ingest's receipt: every event's leaf hash and the chain head after the batch.
    mutating func set(_ receipt: ChainReceipt) {
        leafHashes = receipt.leaves.map { Data($0.bytes) }
        chainHead = Data(receipt.head.bytes)
    }
}

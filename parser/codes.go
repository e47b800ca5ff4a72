package parser

import (
	"github.com/journalsensor/sensor/parser/archive"
	"github.com/journalsensor/sensor/parser/tnef"
	"github.com/journalsensor/sensor/parser/urls"
	"github.com/journalsensor/sensor/parser/walker"
)

// Anomaly codes (api.Anomaly.Code) and limit names (api.Record.LimitsHit) are part of the
// record's contract: pipelines match on them. Each one the parser can emit is a constant,
// here or in the subpackage that finds it, and anomalyCodes and limitNames list them all. A
// test holds that list and api/record.schema.json to each other.

// Anomaly codes the parser emits itself.
const (
	anomalyParserPanic            = "parser_panic"               // a panic was recovered; the record is degraded
	anomalyBareLF                 = "bare_lf"                    // lines end in LF alone on SMTP input
	anomalyBareCR                 = "bare_cr"                    // lines end in CR alone
	anomalyMixedLineEndings       = "mixed_line_endings"         // CRLF and LF lines in one file
	anomalyBadBase64              = "bad_base64"                 // base64 body bytes skipped or kept undecoded
	anomalyBadQuotedPrintable     = "bad_quoted_printable"       // quoted-printable escapes kept undecoded
	anomalyUnknownEncoding        = "unknown_transfer_encoding"  // a body passed through as it is
	anomalyMisspeltEncoding       = "misspelt_transfer_encoding" // "base-64", "b64" and the like, read as base64
	anomalySniffedBase64          = "sniffed_base64"             // a file without a usable encoding, decoded as the base64 it clearly is
	anomalySniffedBase64Broken    = "sniffed_base64_broken"      // a sniffed body stopped being base64 past the bytes the decision was made on
	anomalySniffedQP              = "sniffed_quoted_printable"   // body text declared 7bit, 8bit or nothing whose links were read from its quoted-printable decoding
	anomalyUnknownCharset         = "unknown_charset"            // text scanned without conversion
	anomalyMessagePartial         = "message_partial"            // a message/partial fragment
	anomaly8bitFilename           = "8bit_filename"              // a filename read as Windows-1252
	anomaly8bitHeader             = "8bit_header"                // header bytes read as Windows-1252
	anomalyBadDate                = "bad_date"                   // a Date that does not parse
	anomalyBadAddressList         = "bad_address_list"           // an address field read by the crude fallback
	anomalyBadAuthResults         = "bad_authentication_results" // an Authentication-Results field that does not parse
	anomalyJournalOriginalMissing = "journal_original_missing"   // a journal report without its original
	anomalyEncodedFileIncomplete  = "encoded_file_incomplete"    // a uuencoded or yEnc block without its end line
	anomalyEncodedFileDamaged     = "encoded_file_damaged"       // a uuencoded or yEnc block with bad lines or sums
	anomalyBadSMIME               = "bad_smime"                  // a CMS body that does not parse
	anomalyBadPGP                 = "bad_pgp"                    // an OpenPGP body that does not parse
)

// A container decoder's code c is recorded as its prefix followed by c.
const (
	tnefPrefix = "tnef_"
	zipPrefix  = "zip_"
)

// Limit names the parser reports itself. The walker's, the URL collector's and the
// archive's and TNEF decoder's limits are passed on as they are.
const (
	limitAnomalies         = "anomalies"          // anomalies past MaxAnomalies were dropped
	limitAttachments       = "attachments"        // attachments past MaxAttachments were not listed
	limitMessageDepth      = "message_depth"      // messages nested past MaxMessageDepth were not walked
	limitEncodedDepth      = "encoded_depth"      // encoded containers nested too deep were not decoded
	limitContainerDepth    = "container_depth"    // zip or TNEF nested too deep was not opened
	limitEncodedFiles      = "encoded_files"      // uuencoded or yEnc blocks past the per-part cap
	limitCryptoItems       = "crypto_items"       // certificates or key IDs past the per-layer cap
	limitJournalRecipients = "journal_recipients" // journal recipients past MaxJournalRecipients
	limitTraceFields       = "trace_fields"       // Received or Authentication-Results entries past the cap
	limitStructure         = "structure"          // the structure string was cut at MaxStructureBytes
	limitZipTextBytes      = "zip_text_bytes"     // zip members past maxZipTextBytes were read for links in part
	limitSniffedTextBytes  = "sniffed_text_bytes" // the second reading of a text part (QP under 7bit, UTF-16 byte order) covered its first maxSniffedRaw bytes
)

// anomalyCodes returns every anomaly code a record can carry.
func anomalyCodes() []string {
	codes := []string{
		anomalyParserPanic,
		anomalyBareLF,
		anomalyBareCR,
		anomalyMixedLineEndings,
		anomalyBadBase64,
		anomalyBadQuotedPrintable,
		anomalyUnknownEncoding,
		anomalyMisspeltEncoding,
		anomalySniffedBase64,
		anomalySniffedBase64Broken,
		anomalySniffedQP,
		anomalyUnknownCharset,
		anomalyMessagePartial,
		anomaly8bitFilename,
		anomaly8bitHeader,
		anomalyBadDate,
		anomalyBadAddressList,
		anomalyBadAuthResults,
		anomalyJournalOriginalMissing,
		anomalyEncodedFileIncomplete,
		anomalyEncodedFileDamaged,
		anomalyBadSMIME,
		anomalyBadPGP,

		walker.AnomalyUnclosedMultipart,
		walker.AnomalyEmptyMultipart,
		walker.AnomalyBoundaryNotFound,
		walker.AnomalyHeaderUnterminated,
		walker.AnomalyBadContentType,
		walker.AnomalyMultipartWithoutBoundary,
		walker.AnomalyEncodedMultipart,
		walker.AnomalyBoundaryRecovered,
		walker.AnomalyBrokenFold,
		walker.AnomalyPartAfterClose,
		walker.AnomalyDuplicateContentType,
		walker.AnomalyHeaderFieldTruncated,
		walker.AnomalyHeaderTruncated,
		walker.AnomalyMboxFromLine,
		walker.AnomalyMissingHeader,
		walker.AnomalyHeaderLeadingWhitespace,
		walker.AnomalyMissingSeparator,
		walker.AnomalyWhitespaceSeparator,
	}
	for _, c := range []string{
		tnef.AnomalyBadSignature,
		tnef.AnomalyBadChecksum,
		tnef.AnomalyBadLevel,
		tnef.AnomalyTruncated,
		tnef.AnomalyAttributeTooLarge,
		tnef.AnomalyPropertyTooLarge,
		tnef.AnomalyBadProperty,
		tnef.AnomalyMissingRendData,
		tnef.AnomalyDuplicateData,
		tnef.AnomalyBadEmbedded,
	} {
		codes = append(codes, tnefPrefix+c)
	}
	for _, c := range []string{
		archive.AnomalyTruncated,
		archive.AnomalyBadDeflate,
		archive.AnomalyDeflateSlack,
		archive.AnomalyBadDataDescriptor,
		archive.AnomalyBadZip64,
		archive.AnomalyBadEOCD,
		archive.AnomalyEOCDMissing,
		archive.AnomalyCentralDirectoryMissing,
		archive.AnomalyCentralDirectoryMismatch,
		archive.AnomalyCentralDirectoryUnread,
		archive.AnomalyMultipleCentralDirectories,
		archive.AnomalyEntryCountMismatch,
		archive.AnomalyCentralOnly,
		archive.AnomalyLocalOnly,
		archive.AnomalyOverlappingEntries,
		archive.AnomalyNameMismatch,
		archive.AnomalyHeaderMismatch,
		archive.AnomalySizeMismatch,
		archive.AnomalyCRCMismatch,
		archive.AnomalyPrependedData,
		archive.AnomalyGarbage,
		archive.AnomalyTrailingData,
		archive.AnomalyBadUTF8Name,
		archive.AnomalyLongName,
		archive.AnomalyUnsafeName,
	} {
		codes = append(codes, zipPrefix+c)
	}
	return codes
}

// limitNames returns every name a record's limits_hit can hold.
func limitNames() []string {
	return []string{
		limitAnomalies,
		limitAttachments,
		limitMessageDepth,
		limitEncodedDepth,
		limitContainerDepth,
		limitEncodedFiles,
		limitCryptoItems,
		limitJournalRecipients,
		limitTraceFields,
		limitStructure,
		limitZipTextBytes,
		limitSniffedTextBytes,

		walker.LimitParts,
		walker.LimitDepth,
		walker.LimitLineLength,
		walker.LimitHeaderBytes,
		walker.LimitBoundaryPrefix,

		urls.LimitURLs,
		urls.LimitURLLength,
		urls.LimitHTMLToken,
		urls.LimitUnwrapDepth,

		archive.LimitBytes,
		archive.LimitMembers,
		archive.LimitDepth,
		archive.LimitAnomalies,

		tnef.LimitSize,
		tnef.LimitAttributes,
		tnef.LimitFiles,
		tnef.LimitDepth,
		tnef.LimitAnomalies,
	}
}

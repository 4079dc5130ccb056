namespace Quantize.Core.Inspection;

/// <summary>Counts op types and lists them most frequent first, then by name (ordinal), so reports are stable.</summary>
internal sealed class OpHistogram
{
    private readonly Dictionary<string, int> _counts = new(StringComparer.Ordinal);

    public void Add(string op) => _counts[op] = _counts.GetValueOrDefault(op) + 1;

    public IReadOnlyList<OpCount> ToList() => _counts
        .OrderByDescending(p => p.Value)
        .ThenBy(p => p.Key, StringComparer.Ordinal)
        .Select(p => new OpCount(p.Key, p.Value))
        .ToList();

    /// <summary>The report key of an ONNX op: the bare type in the default domain, else <c>domain.OpType</c>.</summary>
    public static string OnnxKey(string domain, string opType) =>
        domain.Length == 0 || domain == OnnxDefaultDomain ? opType : $"{domain}.{opType}";

    /// <summary>How reports name ONNX's default operator domain (<c>""</c> in the file).</summary>
    public const string OnnxDefaultDomain = "ai.onnx";
}

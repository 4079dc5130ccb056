using System.Text.RegularExpressions;
using Quantize.Kernels.Models.Onnx;

namespace Quantize.Core.Quantization.Graph;

/// <summary>The include/exclude options applied to one node: null if it may be quantized, else the reason it may not.</summary>
internal sealed class NodeSelection
{
    private readonly Regex[] _include, _exclude;
    private readonly QuantizationOptions _options;

    private readonly IReadOnlySet<string> _keepFloat;

    public NodeSelection(QuantizationOptions options, IReadOnlySet<string>? keepFloat = null)
    {
        _options = options;
        _keepFloat = keepFloat ?? new HashSet<string>();
        _include = options.IncludeNodes.Select(Glob).ToArray();
        _exclude = options.ExcludeNodes.Select(Glob).ToArray();
    }

    /// <summary>Why <paramref name="node"/> stays float by the options, or null if the options allow it.</summary>
    public string? Refuse(NodeProto node)
    {
        if (_keepFloat.Contains(QuantizationContext.Label(node))) return "kept float to meet the accuracy target";
        if (_options.ExcludeOpTypes.Contains(node.OpType)) return "excluded by op type";
        if (_options.IncludeOpTypes.Count > 0 && !_options.IncludeOpTypes.Contains(node.OpType)) return "op type not included";
        if (_exclude.Any(r => r.IsMatch(node.Name))) return "excluded by name";
        if (_include.Length > 0 && !_include.Any(r => r.IsMatch(node.Name))) return "name not included";
        return null;
    }

    /// <summary>A whole-name pattern: <c>*</c> any run of characters, <c>?</c> one character.</summary>
    internal static Regex Glob(string pattern) =>
        new("^" + Regex.Escape(pattern).Replace("\\*", ".*").Replace("\\?", ".") + "$", RegexOptions.CultureInvariant);
}

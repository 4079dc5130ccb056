using System.Reflection;

namespace Quantize.Kernels.Runtime.Operators;

/// <summary>
/// Marks an operator class: it implements ONNX op <see cref="OpType"/> of <see cref="Domain"/> from opset
/// <see cref="SinceVersion"/> on, and has <c>public static Operator Create(OperatorBuildContext)</c>.
/// A class may carry several (one per op it implements).
/// </summary>
[AttributeUsage(AttributeTargets.Class, AllowMultiple = true)]
internal sealed class OnnxOperatorAttribute(string opType, int sinceVersion = 1, string domain = "") : Attribute
{
    public string OpType { get; } = opType;
    public int SinceVersion { get; } = sinceVersion;
    public string Domain { get; } = domain;
}

/// <summary>The operators the runtime implements, found once by their <see cref="OnnxOperatorAttribute"/>.</summary>
internal static class OperatorRegistry
{
    private static readonly Lazy<Dictionary<(string Domain, string OpType), List<(int Since, Func<OperatorBuildContext, Operator> Create)>>> Table = new(Build);

    /// <summary>The factory for a node, or null when the op (at this opset) is not implemented.</summary>
    public static Func<OperatorBuildContext, Operator>? Find(string domain, string opType, int opset)
    {
        if (!Table.Value.TryGetValue((Normalize(domain), opType), out var versions)) return null;
        Func<OperatorBuildContext, Operator>? best = null;
        int bestSince = -1;
        foreach (var (since, create) in versions)
        {
            if (since <= opset && since > bestSince)
            {
                best = create;
                bestSince = since;
            }
        }
        return best;
    }

    /// <summary>Every implemented (domain, op type), for reports.</summary>
    public static IEnumerable<(string Domain, string OpType, int SinceVersion)> All() =>
        Table.Value.SelectMany(e => e.Value.Select(v => (e.Key.Domain, e.Key.OpType, v.Since)));

    public static string Normalize(string domain) => domain is "ai.onnx" ? "" : domain;

    private static Dictionary<(string, string), List<(int, Func<OperatorBuildContext, Operator>)>> Build()
    {
        var table = new Dictionary<(string, string), List<(int, Func<OperatorBuildContext, Operator>)>>();
        foreach (var type in typeof(OperatorRegistry).Assembly.GetTypes())
        {
            var attributes = type.GetCustomAttributes<OnnxOperatorAttribute>().ToArray();
            if (attributes.Length == 0) continue;
            var method = type.GetMethod("Create", BindingFlags.Public | BindingFlags.Static, [typeof(OperatorBuildContext)])
                ?? throw new InvalidOperationException($"{type.Name} is marked as an operator but has no static Create(OperatorBuildContext).");
            var create = method.CreateDelegate<Func<OperatorBuildContext, Operator>>();
            foreach (var attribute in attributes)
            {
                var key = (Normalize(attribute.Domain), attribute.OpType);
                if (!table.TryGetValue(key, out var list)) table[key] = list = [];
                list.Add((attribute.SinceVersion, create));
            }
        }
        return table;
    }
}

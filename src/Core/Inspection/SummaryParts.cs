using System.Globalization;

namespace Quantize.Core.Inspection;

/// <summary>One dimension of a shape: a fixed size, or a symbol (an ONNX <c>dim_param</c>, or <c>?</c> when nothing is known).</summary>
public readonly record struct ShapeDimension
{
    private ShapeDimension(long? size, string? symbol)
    {
        Size = size;
        Symbol = symbol;
    }

    /// <summary>The symbol written for a dimension that is neither fixed nor named.</summary>
    public const string UnknownSymbol = "?";

    /// <summary>The size, when the dimension is fixed.</summary>
    public long? Size { get; }

    /// <summary>The symbol, when the dimension is not fixed.</summary>
    public string? Symbol { get; }

    /// <summary>A dimension of fixed size.</summary>
    public static ShapeDimension Fixed(long size) => new(size, null);

    /// <summary>A named dimension (e.g. <c>batch</c>).</summary>
    public static ShapeDimension Symbolic(string name) => new(null, name);

    /// <summary>A dimension about which nothing is known.</summary>
    public static ShapeDimension Unknown { get; } = new(null, UnknownSymbol);

    /// <summary>The size in invariant digits, or the symbol.</summary>
    public override string ToString() => Size?.ToString(CultureInfo.InvariantCulture) ?? Symbol ?? UnknownSymbol;
}

/// <summary>A graph input or output.</summary>
/// <param name="Name">The value's name (ONNX) or node name (GraphDef).</param>
/// <param name="Dtype">The lower-case element type (<c>float32</c>, <c>quint8</c>, <c>seq(float32)</c>...), or <c>unknown</c>.</param>
/// <param name="Shape">The dimensions, or null when the rank is unknown.</param>
public sealed record ValueSummary(string Name, string Dtype, IReadOnlyList<ShapeDimension>? Shape);

/// <summary>How many nodes of one op type a graph has.</summary>
/// <param name="Op">The op type; outside ONNX's default domain it is prefixed with its domain (<c>com.microsoft.MatMulNBits</c>).</param>
/// <param name="Count">The number of nodes.</param>
public sealed record OpCount(string Op, int Count);

/// <summary>An imported ONNX operator set.</summary>
/// <param name="Domain">The domain; the default domain is written <c>ai.onnx</c>.</param>
/// <param name="Version">The opset version.</param>
public sealed record OpsetVersion(string Domain, long Version);

/// <summary>The stored tensors of one element type.</summary>
/// <param name="Dtype">The lower-case element type.</param>
/// <param name="Tensors">How many stored tensors have it.</param>
/// <param name="Elements">Their elements, added up.</param>
/// <param name="Bytes">Their packed bytes, added up (0 for strings).</param>
public sealed record DtypeTotals(string Dtype, int Tensors, long Elements, long Bytes);

/// <summary>One stored tensor (initializer, Constant value, Const node).</summary>
/// <param name="Name">The tensor's name.</param>
/// <param name="Dtype">The lower-case element type.</param>
/// <param name="Shape">The dimensions (empty for a scalar).</param>
/// <param name="Elements">The element count.</param>
/// <param name="Bytes">The packed size in bytes.</param>
public sealed record WeightSummary(string Name, string Dtype, IReadOnlyList<long> Shape, long Elements, long Bytes);

/// <summary>What of a model is already quantized.</summary>
/// <param name="TensorCount">How many stored tensors have a quantized storage type (8 bits or fewer, or TensorFlow's q-types).</param>
/// <param name="TensorNames">The first <see cref="ModelSummary.MaxListedQuantizedTensors"/> of their names, in model order.</param>
/// <param name="Ops">Quantization ops (QuantizeLinear, QLinearConv, MatMulNBits, QuantizeV2, QuantizedConv2D...) by type, most frequent first.</param>
public sealed record QuantizationSummary(int TensorCount, IReadOnlyList<string> TensorNames, IReadOnlyList<OpCount> Ops);

/// <summary>The model-level fields of an ONNX model.</summary>
/// <param name="IrVersion">The IR version (<c>ir_version</c>).</param>
/// <param name="ProducerName">The exporting tool (<c>producer_name</c>).</param>
/// <param name="ProducerVersion">Its version (<c>producer_version</c>).</param>
/// <param name="Opsets">Imported operator sets, the default domain (<c>ai.onnx</c>) first, then by domain name.</param>
/// <param name="GraphName">The main graph's name.</param>
public sealed record OnnxDetails(long IrVersion, string ProducerName, string ProducerVersion, IReadOnlyList<OpsetVersion> Opsets, string GraphName);

using System.Runtime.InteropServices;
using Google.Protobuf;

namespace Quantize.Kernels.Models.TensorFlow;

/// <summary>
/// Reads TensorFlow <c>TensorProto</c> values: <c>tensor_content</c> bytes, or the typed <c>*_val</c>
/// lists, where a list shorter than the element count is padded with its last value (and an
/// empty list means zeros), as TensorFlow does.
/// </summary>
internal static class GraphDefTensorCodec
{
    /// <summary>
    /// Padding a short list cannot make a tensor larger than this. Broadcast constants in real frozen
    /// graphs are small (a [64] batch-norm constant, say); a corrupt dimension must not make a file of
    /// a few bytes claim hundreds of megabytes.
    /// </summary>
    internal const long MaxExpandedBytes = 16L << 20;

    /// <summary>What one decoded string costs beyond its bytes: a reference and an array header.</summary>
    private const long StringOverheadBytes = 32;

    public static StoredTensorInfo Describe(TensorProto tensor, string name, string source)
    {
        var type = GraphDefElementTypes.ToElementType(tensor.Dtype);
        if (type == TensorElementType.Undefined)
            throw new InvalidModelException(source, $"tensor '{name}' has data type {tensor.Dtype}, which Quantize.Kernels cannot read.");
        var shapeProto = tensor.TensorShape;
        if (shapeProto is { UnknownRank: true })
            throw new InvalidModelException(source, $"constant tensor '{name}' has an unknown rank; a stored tensor needs a full shape.");
        long[] shape = shapeProto is null ? [] : shapeProto.Dim.Select(d => d.Size).ToArray();
        long count;
        long bytes;
        try
        {
            count = TensorData.CountElements(shape);
            bytes = type == TensorElementType.String ? 0 : type.ByteCount(count);
        }
        catch (Exception e) when (e is ArgumentException or OverflowException)
        {
            throw new InvalidModelException(source, $"tensor '{name}' has an invalid shape {TensorData.FormatShape(shape)} (unknown, negative or too many elements).");
        }

        if (type == TensorElementType.String)
        {
            if (!tensor.TensorContent.IsEmpty)
                throw new InvalidModelException(source, $"string tensor '{name}' uses tensor_content, which Quantize.Kernels does not read.");
            // Each padded element becomes its own copy of the last string.
            long perString = StringOverheadBytes + (tensor.StringVal.Count == 0 ? 0 : tensor.StringVal[^1].Length);
            long expanded = count > long.MaxValue / perString ? long.MaxValue : count * perString;
            CheckTypedCount(tensor.StringVal.Count, count, shape, name, source, expanded);
        }
        else if (!tensor.TensorContent.IsEmpty)
        {
            if (tensor.TensorContent.Length != bytes)
                throw new InvalidModelException(source, $"tensor '{name}' ({type.DisplayName()} {TensorData.FormatShape(shape)}) needs {bytes} bytes but tensor_content holds {tensor.TensorContent.Length}. The file may be corrupt; freeze the graph again.");
        }
        else
        {
            CheckTypedCount(TypedCount(tensor, type), count, shape, name, source, bytes);
        }
        return new StoredTensorInfo(name, type, shape, count, bytes, IsExternal: false);
    }

    private static void CheckTypedCount(long values, long count, long[] shape, string name, string source, long expandedBytes)
    {
        if (values > count)
            throw new InvalidModelException(source, $"tensor '{name}' holds {values} values but its shape has room for {count}. The file may be corrupt; freeze the graph again.");
        if (values < count && expandedBytes > MaxExpandedBytes)
            throw new InvalidModelException(source, $"tensor '{name}' declares shape {TensorData.FormatShape(shape)} but stores {values} value(s); padding them to that shape would take {expandedBytes} bytes, more than the {MaxExpandedBytes >> 20} MiB allowed for a padded constant. The shape is likely corrupt; freeze the graph again, or store the constant in full (tensor_content).");
    }

    public static TensorData Read(TensorProto tensor, string name, string source)
    {
        var info = Describe(tensor, name, source);
        if (info.ElementType == TensorElementType.String)
        {
            var strings = new byte[info.ElementCount][];
            for (long i = 0; i < strings.LongLength; i++)
                strings[i] = tensor.StringVal.Count == 0 ? [] : tensor.StringVal[(int)Math.Min(i, tensor.StringVal.Count - 1)].ToByteArray();
            return TensorData.FromStrings(info.Shape, strings);
        }
        if (info.ByteCount > Array.MaxLength)
            throw new InvalidModelException(source, $"tensor '{name}' is {info.ByteCount} bytes, more than one array can hold in memory.");
        if (!tensor.TensorContent.IsEmpty)
            return new TensorData(info.ElementType, info.Shape, tensor.TensorContent.ToByteArray());

        var bytes = new byte[info.ByteCount];
        FillTyped(tensor, info, bytes);
        return new TensorData(info.ElementType, info.Shape, bytes);
    }

    /// <summary>Values stored in the typed list for <paramref name="type"/>, counted in elements.</summary>
    private static long TypedCount(TensorProto t, TensorElementType type) => type switch
    {
        TensorElementType.Float32 => t.FloatVal.Count,
        TensorElementType.Float64 => t.DoubleVal.Count,
        TensorElementType.Int64 => t.Int64Val.Count,
        TensorElementType.Bool => t.BoolVal.Count,
        TensorElementType.Float16 or TensorElementType.BFloat16 => t.HalfVal.Count,
        TensorElementType.Complex64 => t.ScomplexVal.Count / 2,
        TensorElementType.Complex128 => t.DcomplexVal.Count / 2,
        TensorElementType.UInt32 => t.Uint32Val.Count,
        TensorElementType.UInt64 => t.Uint64Val.Count,
        TensorElementType.Float8E5M2 or TensorElementType.Float8E4M3FN => t.Float8Val.Length,
        _ => t.IntVal.Count,
    };

    private static void FillTyped(TensorProto t, StoredTensorInfo info, byte[] destination)
    {
        switch (info.ElementType)
        {
            case TensorElementType.Float32: Fill(UnsafeCollectionOperations.AsSpan(t.FloatVal), destination); break;
            case TensorElementType.Float64: Fill(UnsafeCollectionOperations.AsSpan(t.DoubleVal), destination); break;
            case TensorElementType.Int64: Fill(UnsafeCollectionOperations.AsSpan(t.Int64Val), destination); break;
            case TensorElementType.UInt32: Fill(UnsafeCollectionOperations.AsSpan(t.Uint32Val), destination); break;
            case TensorElementType.UInt64: Fill(UnsafeCollectionOperations.AsSpan(t.Uint64Val), destination); break;
            case TensorElementType.Bool: Fill(UnsafeCollectionOperations.AsSpan(t.BoolVal), destination); break;
            case TensorElementType.Int32 or TensorElementType.QInt32: Fill(UnsafeCollectionOperations.AsSpan(t.IntVal), destination); break;
            case TensorElementType.Complex64:
                Fill(MemoryMarshal.Cast<float, ComplexPair<float>>(UnsafeCollectionOperations.AsSpan(t.ScomplexVal)), destination);
                break;
            case TensorElementType.Complex128:
                Fill(MemoryMarshal.Cast<double, ComplexPair<double>>(UnsafeCollectionOperations.AsSpan(t.DcomplexVal)), destination);
                break;
            case TensorElementType.Float16 or TensorElementType.BFloat16:
                Fill(t.HalfVal.Select(v => (ushort)v).ToArray(), destination);
                break;
            case TensorElementType.Int16 or TensorElementType.QInt16: Fill(t.IntVal.Select(v => (short)v).ToArray(), destination); break;
            case TensorElementType.UInt16 or TensorElementType.QUInt16: Fill(t.IntVal.Select(v => (ushort)v).ToArray(), destination); break;
            case TensorElementType.Float8E5M2 or TensorElementType.Float8E4M3FN: Fill(t.Float8Val.Span, destination); break;
            default: Fill(t.IntVal.Select(v => (byte)v).ToArray(), destination); break; // 8-bit integers and q-types
        }
    }

    /// <summary>Copies <paramref name="values"/> and repeats the last one to the end (zeros when there are none).</summary>
    private static void Fill<T>(ReadOnlySpan<T> values, byte[] destination) where T : unmanaged
    {
        var target = MemoryMarshal.Cast<byte, T>(destination.AsSpan());
        values.CopyTo(target);
        if (values.Length > 0 && values.Length < target.Length)
            target[values.Length..].Fill(values[^1]);
    }

    private static void Fill<T>(T[] values, byte[] destination) where T : unmanaged => Fill((ReadOnlySpan<T>)values, destination);

    private readonly record struct ComplexPair<T>(T Real, T Imaginary) where T : unmanaged;

    /// <summary>Wraps bytes as a protobuf field value without copying.</summary>
    public static ByteString Wrap(byte[] bytes) => UnsafeByteOperations.UnsafeWrap(bytes);
}

using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Quantize.Kernels.Models;

/// <summary>
/// The decoded value of a tensor stored in a model: element type, shape and little-endian
/// element bytes (sub-byte types packed, the first element in the lowest bits), or byte strings.
/// </summary>
public sealed class TensorData
{
    private readonly long[] _shape;
    private readonly byte[]? _bytes;
    private readonly byte[][]? _strings;

    /// <summary>Wraps packed element bytes; <paramref name="bytes"/> is kept, not copied.</summary>
    /// <exception cref="ArgumentException">The byte count does not match the shape and type.</exception>
    public TensorData(TensorElementType elementType, ReadOnlySpan<long> shape, byte[] bytes)
    {
        if (elementType is TensorElementType.String or TensorElementType.Undefined)
            throw new ArgumentException($"Use {nameof(FromStrings)} for string tensors; {elementType} has no fixed size.", nameof(elementType));
        _shape = shape.ToArray();
        ElementCount = CountElements(_shape);
        long expected = elementType.ByteCount(ElementCount);
        if (bytes.LongLength != expected)
            throw new ArgumentException($"A {elementType.DisplayName()} tensor of {ElementCount} elements needs {expected} bytes, not {bytes.LongLength}.", nameof(bytes));
        ElementType = elementType;
        _bytes = bytes;
    }

    private TensorData(ReadOnlySpan<long> shape, byte[][] strings)
    {
        _shape = shape.ToArray();
        ElementCount = CountElements(_shape);
        if (strings.LongLength != ElementCount)
            throw new ArgumentException($"A string tensor of {ElementCount} elements needs as many strings, not {strings.Length}.", nameof(strings));
        ElementType = TensorElementType.String;
        _strings = strings;
    }

    /// <summary>A string tensor; each element is a byte string (UTF-8 by convention).</summary>
    public static TensorData FromStrings(ReadOnlySpan<long> shape, byte[][] strings) => new(shape, strings);

    /// <summary>The element type.</summary>
    public TensorElementType ElementType { get; }

    /// <summary>The dimensions; empty for a scalar.</summary>
    public ReadOnlySpan<long> Shape => _shape;

    /// <summary>The product of the dimensions (1 for a scalar).</summary>
    public long ElementCount { get; }

    /// <summary>The packed element bytes. Not available for string tensors.</summary>
    public ReadOnlySpan<byte> Bytes => _bytes ?? throw new InvalidOperationException("A string tensor has no element bytes; use Strings.");

    /// <summary>The elements of a string tensor.</summary>
    public IReadOnlyList<byte[]> Strings => _strings ?? throw new InvalidOperationException($"A {ElementType.DisplayName()} tensor has no strings.");

    /// <summary>
    /// The elements as <typeparamref name="T"/>. <c>byte</c> views any non-string tensor's raw
    /// bytes; otherwise <typeparamref name="T"/> must be the element's own CLR type (e.g. <c>float</c>
    /// for float32, <c>Half</c> or <c>ushort</c> for float16, <c>ushort</c> for bfloat16).
    /// </summary>
    public ReadOnlySpan<T> AsSpan<T>() where T : unmanaged
    {
        var bytes = Bytes;
        if (typeof(T) != typeof(byte) && !IsViewType(ElementType, typeof(T)))
            throw new InvalidOperationException($"A {ElementType.DisplayName()} tensor cannot be read as {typeof(T).Name}.");
        return MemoryMarshal.Cast<byte, T>(bytes);
    }

    /// <summary>A copy of the elements as a new array; see <see cref="AsSpan{T}"/> for the allowed types.</summary>
    public T[] ToArray<T>() where T : unmanaged => AsSpan<T>().ToArray();

    private static bool IsViewType(TensorElementType type, Type t) => type switch
    {
        TensorElementType.Float32 or TensorElementType.Complex64 => t == typeof(float),
        TensorElementType.Float64 => t == typeof(double),
        TensorElementType.Complex128 => t == typeof(double) || t == typeof(Complex),
        TensorElementType.Float16 => t == typeof(Half) || t == typeof(ushort),
        TensorElementType.BFloat16 or TensorElementType.UInt16 or TensorElementType.QUInt16 => t == typeof(ushort),
        TensorElementType.Int8 or TensorElementType.QInt8 => t == typeof(sbyte),
        TensorElementType.Bool => t == typeof(bool),
        TensorElementType.Int16 or TensorElementType.QInt16 => t == typeof(short),
        TensorElementType.Int32 or TensorElementType.QInt32 => t == typeof(int),
        TensorElementType.UInt32 => t == typeof(uint),
        TensorElementType.Int64 => t == typeof(long),
        TensorElementType.UInt64 => t == typeof(ulong),
        _ => false,
    };

    /// <summary>The product of <paramref name="shape"/>; throws on a negative dimension or overflow.</summary>
    public static long CountElements(ReadOnlySpan<long> shape)
    {
        long count = 1;
        foreach (long d in shape)
        {
            if (d < 0) throw new ArgumentException($"Dimension {d} is negative.", nameof(shape));
            count = checked(count * d);
        }
        return count;
    }

    /// <summary>Formats a shape as <c>[2, 3]</c>.</summary>
    public static string FormatShape(ReadOnlySpan<long> shape)
    {
        var handler = new DefaultInterpolatedStringHandler(2, 0);
        handler.AppendLiteral("[");
        for (int i = 0; i < shape.Length; i++)
        {
            if (i > 0) handler.AppendLiteral(", ");
            handler.AppendFormatted(shape[i]);
        }
        handler.AppendLiteral("]");
        return handler.ToStringAndClear();
    }
}

using System.Buffers;
using System.Runtime.InteropServices;
using Quantize.Kernels.Models;

namespace Quantize.Kernels.Runtime;

/// <summary>
/// A dense, row-major tensor passed into and out of <see cref="ModelSession.Run"/>: an element type, a
/// shape, and the elements in a .NET array (float, Half, double, long, int, short, sbyte, byte, ushort,
/// uint, ulong, bool or string). 4-bit types are held one value per byte (sbyte for int4, byte for uint4).
/// </summary>
public sealed class Tensor
{
    private readonly int[] _shape;

    internal Tensor(TensorElementType elementType, int[] shape, TensorBuffer buffer)
    {
        ElementType = elementType;
        _shape = shape;
        Buffer = buffer;
        Length = CountElements(shape);
        if (buffer.Data.Length < Length)
            throw new ArgumentException($"A {elementType.DisplayName()} tensor of shape {Format(shape)} needs {Length} elements; the buffer has {buffer.Data.Length}.");
    }

    /// <summary>The element type.</summary>
    public TensorElementType ElementType { get; }

    /// <summary>The dimensions (empty for a scalar).</summary>
    public ReadOnlySpan<int> Shape => _shape;

    /// <summary>The number of elements.</summary>
    public int Length { get; }

    /// <summary>The rank.</summary>
    public int Rank => _shape.Length;

    internal TensorBuffer Buffer { get; }

    internal int[] ShapeArray => _shape;

    /// <summary>Wraps <paramref name="data"/> (not copied) as a tensor of <paramref name="shape"/>; the element type follows <typeparamref name="T"/>.</summary>
    public static Tensor Create<T>(T[] data, params int[] shape) => Create(data, ElementTypeOf<T>(), shape);

    /// <summary>Wraps <paramref name="data"/> as a tensor of <paramref name="elementType"/> (e.g. <c>ushort</c> data as bfloat16).</summary>
    public static Tensor Create<T>(T[] data, TensorElementType elementType, params int[] shape)
    {
        ArgumentNullException.ThrowIfNull(data);
        if (StorageType(elementType) != typeof(T))
            throw new ArgumentException($"A {elementType.DisplayName()} tensor holds {StorageType(elementType).Name} values, not {typeof(T).Name}.");
        var tensor = new Tensor(elementType, (int[])shape.Clone(), new TensorBuffer(data, pooled: false));
        if (data.Length != tensor.Length)
            throw new ArgumentException($"Shape {Format(shape)} holds {tensor.Length} elements; the array has {data.Length}.", nameof(data));
        return tensor;
    }

    /// <summary>A zero-filled tensor.</summary>
    public static Tensor Zeros(TensorElementType elementType, params int[] shape) =>
        new(elementType, (int[])shape.Clone(), new TensorBuffer(Array.CreateInstance(StorageType(elementType), CountElements(shape)), pooled: false));

    /// <summary>The elements as <typeparamref name="T"/>, which must be the storage type of <see cref="ElementType"/>.</summary>
    public Span<T> AsSpan<T>()
    {
        if (Buffer.Data is not T[] array)
            throw new InvalidOperationException($"A {ElementType.DisplayName()} tensor holds {Buffer.Data.GetType().GetElementType()!.Name} values, not {typeof(T).Name}.");
        return array.AsSpan(0, Length);
    }

    /// <summary>A copy of the elements.</summary>
    public T[] ToArray<T>() => AsSpan<T>().ToArray();

    /// <summary>The .NET type that holds elements of <paramref name="elementType"/>.</summary>
    public static Type StorageType(TensorElementType elementType) => elementType switch
    {
        TensorElementType.Float32 => typeof(float),
        TensorElementType.Float64 => typeof(double),
        TensorElementType.Float16 => typeof(Half),
        TensorElementType.BFloat16 or TensorElementType.UInt16 => typeof(ushort),
        TensorElementType.Int8 or TensorElementType.Int4 => typeof(sbyte),
        TensorElementType.UInt8 or TensorElementType.UInt4 or TensorElementType.Float8E4M3FN or TensorElementType.Float8E4M3FNUZ
            or TensorElementType.Float8E5M2 or TensorElementType.Float8E5M2FNUZ => typeof(byte),
        TensorElementType.Int16 => typeof(short),
        TensorElementType.Int32 => typeof(int),
        TensorElementType.UInt32 => typeof(uint),
        TensorElementType.Int64 => typeof(long),
        TensorElementType.UInt64 => typeof(ulong),
        TensorElementType.Bool => typeof(bool),
        TensorElementType.String => typeof(string),
        _ => throw new NotSupportedException($"Tensors of {elementType.DisplayName()} are not supported by the runtime."),
    };

    /// <summary>The element type a .NET type stands for by default.</summary>
    public static TensorElementType ElementTypeOf<T>() => typeof(T) switch
    {
        var t when t == typeof(float) => TensorElementType.Float32,
        var t when t == typeof(double) => TensorElementType.Float64,
        var t when t == typeof(Half) => TensorElementType.Float16,
        var t when t == typeof(sbyte) => TensorElementType.Int8,
        var t when t == typeof(byte) => TensorElementType.UInt8,
        var t when t == typeof(short) => TensorElementType.Int16,
        var t when t == typeof(ushort) => TensorElementType.UInt16,
        var t when t == typeof(int) => TensorElementType.Int32,
        var t when t == typeof(uint) => TensorElementType.UInt32,
        var t when t == typeof(long) => TensorElementType.Int64,
        var t when t == typeof(ulong) => TensorElementType.UInt64,
        var t when t == typeof(bool) => TensorElementType.Bool,
        var t when t == typeof(string) => TensorElementType.String,
        _ => throw new NotSupportedException($"No tensor element type is stored as {typeof(T).Name}."),
    };

    internal static int CountElements(ReadOnlySpan<int> shape)
    {
        long count = 1;
        foreach (int d in shape)
        {
            if (d < 0) throw new ArgumentException($"Dimension {d} is negative.");
            count *= d;
            if (count > Array.MaxLength) throw new ArgumentException($"Shape {Format(shape)} has too many elements.");
        }
        return (int)count;
    }

    internal static string Format(ReadOnlySpan<int> shape) => "[" + string.Join(", ", shape.ToArray()) + "]";

    /// <inheritdoc />
    public override string ToString() => $"{ElementType.DisplayName()} {Format(_shape)}";

    /// <summary>A tensor of another shape over the same elements (Reshape, Flatten, Squeeze, Unsqueeze, Identity).</summary>
    internal Tensor View(int[] shape)
    {
        Buffer.AddReference();
        return new Tensor(ElementType, shape, Buffer);
    }
}

/// <summary>
/// The array behind one or more tensors. Arrays rented from the pool go back when the last tensor over them
/// is released; arrays from the caller or from the model's constants are never pooled.
/// </summary>
internal sealed class TensorBuffer(Array data, bool pooled)
{
    private int _references = 1;

    public Array Data { get; } = data;

    public bool Pooled { get; private set; } = pooled;

    public void AddReference() => Interlocked.Increment(ref _references);

    /// <summary>Keeps the array out of the pool for good (it becomes a caller's output).</summary>
    public void Detach() => Pooled = false;

    public void Release()
    {
        if (Interlocked.Decrement(ref _references) == 0 && Pooled) TensorPool.Return(Data);
    }
}

/// <summary>Rents and returns tensor arrays through the shared array pools (thread-safe).</summary>
internal static class TensorPool
{
    public static Tensor Rent(TensorElementType elementType, int[] shape)
    {
        int length = Tensor.CountElements(shape);
        Array data = Tensor.StorageType(elementType) switch
        {
            var t when t == typeof(float) => ArrayPool<float>.Shared.Rent(length),
            var t when t == typeof(double) => ArrayPool<double>.Shared.Rent(length),
            var t when t == typeof(long) => ArrayPool<long>.Shared.Rent(length),
            var t when t == typeof(int) => ArrayPool<int>.Shared.Rent(length),
            var t when t == typeof(byte) => ArrayPool<byte>.Shared.Rent(length),
            var t when t == typeof(sbyte) => ArrayPool<sbyte>.Shared.Rent(length),
            _ => Array.CreateInstance(Tensor.StorageType(elementType), length),
        };
        bool pooled = data.GetType() is var type && (type == typeof(float[]) || type == typeof(double[]) || type == typeof(long[])
            || type == typeof(int[]) || type == typeof(byte[]) || type == typeof(sbyte[]));
        return new Tensor(elementType, shape, new TensorBuffer(data, pooled));
    }

    public static void Return(Array data)
    {
        switch (data)
        {
            case float[] f: ArrayPool<float>.Shared.Return(f); break;
            case double[] d: ArrayPool<double>.Shared.Return(d); break;
            case long[] l: ArrayPool<long>.Shared.Return(l); break;
            case int[] i: ArrayPool<int>.Shared.Return(i); break;
            case byte[] b: ArrayPool<byte>.Shared.Return(b); break;
            case sbyte[] s: ArrayPool<sbyte>.Shared.Return(s); break;
        }
    }

    /// <summary>A runtime tensor holding a stored tensor's values (4-bit types unpacked, one per byte).</summary>
    public static Tensor FromStored(TensorData data)
    {
        int[] shape = data.Shape.ToArray().Select(d => checked((int)d)).ToArray();
        Array array;
        switch (data.ElementType)
        {
            case TensorElementType.String:
                array = data.Strings.Select(s => System.Text.Encoding.UTF8.GetString(s)).ToArray();
                break;
            case TensorElementType.Int4:
            {
                var values = new sbyte[data.ElementCount];
                Quantization.Int4Packing.Unpack(data.Bytes, values);
                array = values;
                break;
            }
            case TensorElementType.UInt4:
            {
                var values = new byte[data.ElementCount];
                Quantization.Int4Packing.Unpack(data.Bytes, values);
                array = values;
                break;
            }
            default:
            {
                var storage = Tensor.StorageType(data.ElementType);
                array = Array.CreateInstance(storage, data.ElementCount);
                // Buffer.ByteLength refuses Half[] (not a primitive type): count its two bytes per element ourselves.
                int bytes = storage == typeof(Half) ? checked(array.Length * 2) : checked((int)Buffer.ByteLength(array));
                var target = MemoryMarshal.CreateSpan(ref MemoryMarshal.GetArrayDataReference(array), bytes);
                data.Bytes.CopyTo(target);
                break;
            }
        }
        return new Tensor(data.ElementType, shape, new TensorBuffer(array, pooled: false));
    }
}

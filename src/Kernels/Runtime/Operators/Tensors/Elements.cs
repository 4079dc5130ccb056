using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Quantize.Kernels.Models;

namespace Quantize.Kernels.Runtime.Operators;

/// <summary>A data-movement kernel, generic over a storage word of the elements' width.</summary>
internal interface IElementMove
{
    /// <summary>Moves the elements, seen as <typeparamref name="T"/> (byte, ushort, int, long or string).</summary>
    void Run<T>();
}

/// <summary>
/// Element access for ops that only move elements (Concat, Slice, Transpose, Pad...): every element type is
/// handled as a word of its width, so one instantiation serves float, int32 and uint32 alike, and bool,
/// int8 and uint8 alike. Strings are moved as references.
/// </summary>
internal static class Elements
{
    /// <summary>Bytes per stored element, or 0 for strings.</summary>
    public static int Width(Tensor tensor) => tensor.Buffer.Data switch
    {
        byte[] or sbyte[] or bool[] => 1,
        Half[] or ushort[] or short[] => 2,
        float[] or int[] or uint[] => 4,
        double[] or long[] or ulong[] => 8,
        string[] => 0,
        var other => throw new NotSupportedException($"Tensors stored as {other.GetType().Name} are not supported."),
    };

    /// <summary>Runs <paramref name="move"/> with the storage word of <paramref name="tensor"/>'s width.</summary>
    public static void Dispatch<TMove>(Tensor tensor, ref TMove move) where TMove : struct, IElementMove
    {
        switch (Width(tensor))
        {
            case 1: move.Run<byte>(); break;
            case 2: move.Run<ushort>(); break;
            case 4: move.Run<int>(); break;
            case 8: move.Run<long>(); break;
            default: move.Run<string>(); break;
        }
    }

    /// <summary>The elements of <paramref name="tensor"/> as words <typeparamref name="T"/> of the same width.</summary>
    public static Span<T> Span<T>(Tensor tensor)
    {
        var data = tensor.Buffer.Data;
        if (data is T[] exact) return exact.AsSpan(0, tensor.Length);
        if (RuntimeHelpers.IsReferenceOrContainsReferences<T>() || Width(tensor) != Unsafe.SizeOf<T>())
            throw new InvalidOperationException($"A {tensor.ElementType.DisplayName()} tensor cannot be read as {typeof(T).Name}.");
        return MemoryMarshal.CreateSpan(ref Unsafe.As<byte, T>(ref MemoryMarshal.GetArrayDataReference(data)), tensor.Length);
    }

    /// <summary>
    /// The integers of a shape-like input (int64, or int32 where ONNX allows it) as longs: axes, starts,
    /// repeats, pads. Small, so a fresh array is fine.
    /// </summary>
    public static long[] Integers(Tensor tensor, string node, string what) => tensor.Buffer.Data switch
    {
        long[] values => values.AsSpan(0, tensor.Length).ToArray(),
        int[] values => ToLongs(values.AsSpan(0, tensor.Length)),
        _ => throw new NotSupportedException($"{node}: {what} of {tensor.ElementType.DisplayName()} is not supported (int64 or int32 expected)."),
    };

    private static long[] ToLongs(ReadOnlySpan<int> values)
    {
        var result = new long[values.Length];
        for (int i = 0; i < values.Length; i++) result[i] = values[i];
        return result;
    }

    /// <summary>Row-major element strides of <paramref name="shape"/>.</summary>
    public static int[] Strides(ReadOnlySpan<int> shape)
    {
        var strides = new int[shape.Length];
        int stride = 1;
        for (int d = shape.Length - 1; d >= 0; d--)
        {
            strides[d] = stride;
            stride *= shape[d];
        }
        return strides;
    }

    /// <summary>An axis in [-rank, rank) made non-negative; anything else is an error in the model.</summary>
    public static int Axis(long axis, int rank, string node)
    {
        if (axis < -rank || axis >= rank)
            throw new InvalidOperationException($"{node}: axis {axis} is out of range for rank {rank}.");
        return (int)(axis < 0 ? axis + rank : axis);
    }

    /// <summary>Product of <paramref name="shape"/>[<paramref name="from"/>..<paramref name="to"/>).</summary>
    public static int Product(ReadOnlySpan<int> shape, int from, int to)
    {
        int product = 1;
        for (int d = from; d < to; d++) product *= shape[d];
        return product;
    }
}

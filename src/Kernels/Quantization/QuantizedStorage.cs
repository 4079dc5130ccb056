using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Quantize.Kernels.Quantization;

/// <summary>
/// How the element kernels move quantized values of one storage type between memory and int32
/// vectors. Sub-byte types use the 8-bit storages with a narrower range, then are packed.
/// </summary>
internal interface IQuantizedStorage<T> where T : unmanaged
{
    /// <summary>Elements one call of the Vector256 load/store handles: four int32 vectors.</summary>
    const int Block256 = 32;

    /// <summary>Elements one call of the Vector128 load/store handles: four int32 vectors.</summary>
    const int Block128 = 16;

    static abstract T FromInt32(int value);

    static abstract int ToInt32(T value);

    /// <summary>Stores 32 values (already inside the type's range) from four vectors.</summary>
    static abstract void Store(Vector256<int> v0, Vector256<int> v1, Vector256<int> v2, Vector256<int> v3, ref T destination);

    /// <summary>Stores 16 values (already inside the type's range) from four vectors.</summary>
    static abstract void Store(Vector128<int> v0, Vector128<int> v1, Vector128<int> v2, Vector128<int> v3, ref T destination);

    /// <summary>Loads 32 values widened to int32.</summary>
    static abstract (Vector256<int>, Vector256<int>, Vector256<int>, Vector256<int>) Load256(ref T source);

    /// <summary>Loads 16 values widened to int32.</summary>
    static abstract (Vector128<int>, Vector128<int>, Vector128<int>, Vector128<int>) Load128(ref T source);
}

internal readonly struct SByteStorage : IQuantizedStorage<sbyte>
{
    public static sbyte FromInt32(int value) => (sbyte)value;

    public static int ToInt32(sbyte value) => value;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Store(Vector256<int> v0, Vector256<int> v1, Vector256<int> v2, Vector256<int> v3, ref sbyte destination) =>
        Vector256.Narrow(Vector256.Narrow(v0, v1), Vector256.Narrow(v2, v3)).StoreUnsafe(ref destination);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Store(Vector128<int> v0, Vector128<int> v1, Vector128<int> v2, Vector128<int> v3, ref sbyte destination) =>
        Vector128.Narrow(Vector128.Narrow(v0, v1), Vector128.Narrow(v2, v3)).StoreUnsafe(ref destination);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static (Vector256<int>, Vector256<int>, Vector256<int>, Vector256<int>) Load256(ref sbyte source)
    {
        var (lo, hi) = Vector256.Widen(Vector256.LoadUnsafe(ref source));
        var (a, b) = Vector256.Widen(lo);
        var (c, d) = Vector256.Widen(hi);
        return (a, b, c, d);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static (Vector128<int>, Vector128<int>, Vector128<int>, Vector128<int>) Load128(ref sbyte source)
    {
        var (lo, hi) = Vector128.Widen(Vector128.LoadUnsafe(ref source));
        var (a, b) = Vector128.Widen(lo);
        var (c, d) = Vector128.Widen(hi);
        return (a, b, c, d);
    }
}

internal readonly struct ByteStorage : IQuantizedStorage<byte>
{
    public static byte FromInt32(int value) => (byte)value;

    public static int ToInt32(byte value) => value;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Store(Vector256<int> v0, Vector256<int> v1, Vector256<int> v2, Vector256<int> v3, ref byte destination) =>
        Vector256.Narrow(Vector256.Narrow(v0, v1).AsUInt16(), Vector256.Narrow(v2, v3).AsUInt16()).StoreUnsafe(ref destination);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Store(Vector128<int> v0, Vector128<int> v1, Vector128<int> v2, Vector128<int> v3, ref byte destination) =>
        Vector128.Narrow(Vector128.Narrow(v0, v1).AsUInt16(), Vector128.Narrow(v2, v3).AsUInt16()).StoreUnsafe(ref destination);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static (Vector256<int>, Vector256<int>, Vector256<int>, Vector256<int>) Load256(ref byte source)
    {
        var (lo, hi) = Vector256.Widen(Vector256.LoadUnsafe(ref source));
        var (a, b) = Vector256.Widen(lo);
        var (c, d) = Vector256.Widen(hi);
        return (a.AsInt32(), b.AsInt32(), c.AsInt32(), d.AsInt32());
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static (Vector128<int>, Vector128<int>, Vector128<int>, Vector128<int>) Load128(ref byte source)
    {
        var (lo, hi) = Vector128.Widen(Vector128.LoadUnsafe(ref source));
        var (a, b) = Vector128.Widen(lo);
        var (c, d) = Vector128.Widen(hi);
        return (a.AsInt32(), b.AsInt32(), c.AsInt32(), d.AsInt32());
    }
}

internal readonly struct Int16Storage : IQuantizedStorage<short>
{
    public static short FromInt32(int value) => (short)value;

    public static int ToInt32(short value) => value;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Store(Vector256<int> v0, Vector256<int> v1, Vector256<int> v2, Vector256<int> v3, ref short destination)
    {
        Vector256.Narrow(v0, v1).StoreUnsafe(ref destination);
        Vector256.Narrow(v2, v3).StoreUnsafe(ref Unsafe.Add(ref destination, 16));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Store(Vector128<int> v0, Vector128<int> v1, Vector128<int> v2, Vector128<int> v3, ref short destination)
    {
        Vector128.Narrow(v0, v1).StoreUnsafe(ref destination);
        Vector128.Narrow(v2, v3).StoreUnsafe(ref Unsafe.Add(ref destination, 8));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static (Vector256<int>, Vector256<int>, Vector256<int>, Vector256<int>) Load256(ref short source)
    {
        var (a, b) = Vector256.Widen(Vector256.LoadUnsafe(ref source));
        var (c, d) = Vector256.Widen(Vector256.LoadUnsafe(ref Unsafe.Add(ref source, 16)));
        return (a, b, c, d);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static (Vector128<int>, Vector128<int>, Vector128<int>, Vector128<int>) Load128(ref short source)
    {
        var (a, b) = Vector128.Widen(Vector128.LoadUnsafe(ref source));
        var (c, d) = Vector128.Widen(Vector128.LoadUnsafe(ref Unsafe.Add(ref source, 8)));
        return (a, b, c, d);
    }
}

internal readonly struct UInt16Storage : IQuantizedStorage<ushort>
{
    public static ushort FromInt32(int value) => (ushort)value;

    public static int ToInt32(ushort value) => value;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Store(Vector256<int> v0, Vector256<int> v1, Vector256<int> v2, Vector256<int> v3, ref ushort destination)
    {
        Vector256.Narrow(v0.AsUInt32(), v1.AsUInt32()).StoreUnsafe(ref destination);
        Vector256.Narrow(v2.AsUInt32(), v3.AsUInt32()).StoreUnsafe(ref Unsafe.Add(ref destination, 16));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Store(Vector128<int> v0, Vector128<int> v1, Vector128<int> v2, Vector128<int> v3, ref ushort destination)
    {
        Vector128.Narrow(v0.AsUInt32(), v1.AsUInt32()).StoreUnsafe(ref destination);
        Vector128.Narrow(v2.AsUInt32(), v3.AsUInt32()).StoreUnsafe(ref Unsafe.Add(ref destination, 8));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static (Vector256<int>, Vector256<int>, Vector256<int>, Vector256<int>) Load256(ref ushort source)
    {
        var (a, b) = Vector256.Widen(Vector256.LoadUnsafe(ref source));
        var (c, d) = Vector256.Widen(Vector256.LoadUnsafe(ref Unsafe.Add(ref source, 16)));
        return (a.AsInt32(), b.AsInt32(), c.AsInt32(), d.AsInt32());
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static (Vector128<int>, Vector128<int>, Vector128<int>, Vector128<int>) Load128(ref ushort source)
    {
        var (a, b) = Vector128.Widen(Vector128.LoadUnsafe(ref source));
        var (c, d) = Vector128.Widen(Vector128.LoadUnsafe(ref Unsafe.Add(ref source, 8)));
        return (a.AsInt32(), b.AsInt32(), c.AsInt32(), d.AsInt32());
    }
}

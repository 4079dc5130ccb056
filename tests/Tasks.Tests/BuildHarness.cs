using System.Diagnostics;
using System.Reflection;
using System.Text;

namespace Quantize.Build.Tasks.Tests;

/// <summary>The result of a <c>dotnet</c> command run by <see cref="BuildHarness"/>.</summary>
internal sealed record DotnetRun(int ExitCode, string Output)
{
    public DotnetRun Succeeded()
    {
        Assert.True(ExitCode == 0, $"dotnet exited with {ExitCode}:\n{Tail(Output)}");
        return this;
    }

    public static string Tail(string text, int lines = 60) => string.Join("\n", text.Split('\n').TakeLast(lines));
}

/// <summary>
/// A temporary folder with a local NuGet feed holding the freshly packed Quantize.Build package, its own NuGet
/// packages folder and cache folder (nothing leaks into the user's), and generated projects built with real
/// <c>dotnet</c> child processes.
/// </summary>
internal sealed class BuildHarness : IDisposable
{
    public BuildHarness()
    {
        Root = Directory.CreateTempSubdirectory("quantize-build-e2e-").FullName;
        Feed = Path.Combine(Root, "feed");
        Packages = Path.Combine(Root, "packages");
        Cache = Path.Combine(Root, "cache");
        Directory.CreateDirectory(Feed);
        File.WriteAllText(Path.Combine(Root, "nuget.config"), $"""
            <?xml version="1.0" encoding="utf-8"?>
            <configuration>
              <packageSources>
                <clear />
                <add key="local" value="{Feed}" />
              </packageSources>
            </configuration>
            """);
        // Generated projects must not pick up the repository's Directory.Build.props or central package versions.
        File.WriteAllText(Path.Combine(Root, "Directory.Build.props"), "<Project />");
        File.WriteAllText(Path.Combine(Root, "Directory.Build.targets"), "<Project />");
        File.WriteAllText(Path.Combine(Root, "Directory.Packages.props"), "<Project />");
        // Packed from what the test run built (no build here: other test assemblies may be running the same binaries).
        var metadata = typeof(BuildHarness).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>().ToDictionary(a => a.Key, a => a.Value);
        Run(Root, "pack", metadata["TasksProject"]!, "--no-build", "-c", metadata["Configuration"]!, "-o", Feed, "-p:Version=" + PackageVersion).Succeeded();
    }

    /// <summary>A version no other build uses, so the package folder never holds a stale copy.</summary>
    public string PackageVersion { get; } = "0.1.0-e2e." + DateTime.UtcNow.ToString("yyyyMMddHHmmss", System.Globalization.CultureInfo.InvariantCulture);

    public string Root { get; }

    public string Feed { get; }

    public string Packages { get; }

    public string Cache { get; }

    /// <summary>Writes a console project referencing the package; <paramref name="items"/> goes into an ItemGroup.</summary>
    public string CreateProject(string name, string items, string properties = "")
    {
        string folder = Path.Combine(Root, name);
        Directory.CreateDirectory(folder);
        File.WriteAllText(Path.Combine(folder, name + ".csproj"), $"""
            <Project Sdk="Microsoft.NET.Sdk">
              <PropertyGroup>
                <OutputType>Exe</OutputType>
                <TargetFramework>net10.0</TargetFramework>
                <ImplicitUsings>enable</ImplicitUsings>
                <QuantizeCacheDirectory>{Cache}</QuantizeCacheDirectory>
                {properties}
              </PropertyGroup>
              <ItemGroup>
                <PackageReference Include="Quantize.Build" Version="{PackageVersion}" />
              </ItemGroup>
              <ItemGroup>
                {items}
              </ItemGroup>
            </Project>
            """);
        File.WriteAllText(Path.Combine(folder, "Program.cs"), "Console.WriteLine(\"hello\");\n");
        return folder;
    }

    /// <summary>Runs <c>dotnet ARGS</c> in <paramref name="folder"/> with this harness's NuGet folders; returns the exit code and all output.</summary>
    public DotnetRun Run(string folder, params string[] args) => Run(folder, null, args);

    /// <summary>As <see cref="Run(string, string[])"/>, but kills the whole process tree at the first output line that <paramref name="killWhen"/> accepts.</summary>
    public DotnetRun Run(string folder, Func<string, bool>? killWhen, params string[] args)
    {
        string dotnet = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host && File.Exists(host) ? host : "dotnet";
        var start = new ProcessStartInfo(dotnet)
        {
            WorkingDirectory = folder,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (string arg in args) start.ArgumentList.Add(arg);
        start.ArgumentList.Add("-nologo");
        // The parent test run's MSBuild settings must not leak into the child build.
        foreach (string variable in new[] { "MSBuildExtensionsPath", "MSBuildSDKsPath", "MSBUILD_EXE_PATH", "MSBuildLoadMicrosoftTargetsReadOnly", "VSTEST_HOST_DEBUG" })
            start.Environment.Remove(variable);
        start.Environment["NUGET_PACKAGES"] = Packages;
        // The user-level default cache (local application data) lands here too, not in the user's folder.
        start.Environment["XDG_DATA_HOME"] = Path.Combine(Root, "user-data");
        start.Environment["LOCALAPPDATA"] = Path.Combine(Root, "user-data");
        start.Environment["MSBUILDDISABLENODEREUSE"] = "1";
        start.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        start.Environment["DOTNET_NOLOGO"] = "1";
        start.Environment["DOTNET_SKIP_FIRST_TIME_EXPERIENCE"] = "1";
        start.Environment["TERM"] = "dumb";
        using var process = Process.Start(start)!;
        var output = new StringBuilder();
        process.OutputDataReceived += (_, e) =>
        {
            if (e.Data is null) return;
            lock (output) output.AppendLine(e.Data);
            if (killWhen is not null && killWhen(e.Data))
            {
                try
                {
                    process.Kill(entireProcessTree: true);
                }
                catch (InvalidOperationException)
                {
                    // Already finished.
                }
            }
        };
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (output) output.AppendLine(e.Data); };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        if (!process.WaitForExit(TimeSpan.FromMinutes(5)))
        {
            process.Kill(entireProcessTree: true);
            Assert.Fail($"dotnet {string.Join(' ', args)} did not finish within 5 minutes:\n{DotnetRun.Tail(output.ToString())}");
        }
        process.WaitForExit();
        lock (output) return new DotnetRun(process.ExitCode, output.ToString());
    }

    public void Dispose()
    {
        try
        {
            Directory.Delete(Root, recursive: true);
        }
        catch (IOException)
        {
            // A leftover temp folder is harmless.
        }
    }
}
